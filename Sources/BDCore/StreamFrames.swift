import Foundation

/// The framing of the daemon's streamed replies (`run` attached, `logs`, `pull`): a sequence of
/// frames, each a kind byte, three zero bytes, a big-endian UInt32 length, then the payload —
/// the Docker engine's own multiplexing, with more kinds. Bytes of container output pass
/// through unchanged, and the last frame is always the usual JSON envelope, so a stream that
/// ends without one was cut off. An attached `run` with `-i` or `-t` sends its request body in
/// the same framing (`request`, then `stdin` and `resize`), so one reader serves both ways.
public enum StreamFrameKind: UInt8, Sendable {
    /// Request body only: bytes for the container's stdin (Docker's number for stdin).
    case stdin = 0
    case stdout = 1
    case stderr = 2
    /// One line of pull progress, a `PullLine` as JSON.
    case progress = 3
    /// `{"status_code": N, "results": ...}`: the outcome; nothing follows.
    case end = 4
    /// The container's full id, once, before an attached run's output: the client needs it to
    /// forward signals (Ctrl-C) to the container.
    case container = 5
    /// Request body only: the terminal's new size, a `TerminalSize` as JSON.
    case resize = 6
    /// Request body only, first and once: the `RunRequest` as JSON.
    case request = 7
}

public enum StreamFrames {
    public static let contentType = "application/vnd.bdocker.stream"

    public static func header(_ kind: StreamFrameKind, length: Int) -> [UInt8] {
        let n = UInt32(length)
        return [kind.rawValue, 0, 0, 0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
    }

    public static func encode(_ kind: StreamFrameKind, _ payload: [UInt8]) -> [UInt8] {
        header(kind, length: payload.count) + payload
    }
}

/// Reassembles frames from chunks cut anywhere.
public struct StreamFrameReader: Sendable {
    private var pending: [UInt8] = []
    private let maxPayload: Int

    /// - Parameter maxPayload: the largest frame accepted. The daemon reading a user's request
    ///   body sets it, so a header claiming gigabytes is refused instead of waited for.
    public init(maxPayload: Int = Int(UInt32.max)) {
        self.maxPayload = maxPayload
    }

    /// Whether a frame was begun and not finished: at the end of a stream, it was cut off.
    public var hasPartialFrame: Bool { !pending.isEmpty }

    public mutating func feed(_ chunk: [UInt8]) throws(BDockerError) -> [(StreamFrameKind, [UInt8])] {
        pending.append(contentsOf: chunk)
        var frames: [(StreamFrameKind, [UInt8])] = []
        var offset = 0
        while pending.count - offset >= 8 {
            guard let kind = StreamFrameKind(rawValue: pending[offset]), pending[(offset + 1)..<(offset + 4)].allSatisfy({ $0 == 0 }) else {
                throw .invalidInput("the stream has a frame of unknown kind \(pending[offset])")
            }
            let length = pending[(offset + 4)..<(offset + 8)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= maxPayload else {
                throw .invalidInput("the stream has a frame of \(length) bytes; at most \(maxPayload) are accepted")
            }
            guard pending.count - offset - 8 >= length else { break }
            frames.append((kind, Array(pending[(offset + 8)..<(offset + 8 + length)])))
            offset += 8 + length
        }
        pending.removeFirst(offset)
        return frames
    }
}

/// One pull progress message of the engine, as a progress frame carries it: the layer (or
/// the reference, for lines about the whole image), its status and the engine's progress bar.
public struct PullLine: Codable, Sendable, Equatable {
    public var id: String?
    public var status: String
    public var progress: String?

    public init(id: String?, status: String, progress: String?) {
        self.id = id
        self.status = status
        self.progress = progress
    }

    public var json: [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }

    /// As the engine's own CLI prints it: "ID: Status PROGRESS".
    public var text: String {
        [id.map { "\($0): " } ?? "", status, progress.map { " \($0)" } ?? ""].joined()
    }
}
