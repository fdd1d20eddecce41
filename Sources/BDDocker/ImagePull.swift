import BDCore
import Foundation
import NIOCore

/// One progress line of a pull ("Pulling fs layer", "Downloading", "Pull complete", …).
public struct PullProgress: Sendable, Equatable {
    public var status: String
    /// The layer the line is about, or the reference for whole-image lines.
    public var id: String?
    /// The engine's rendered progress bar, when it sends one.
    public var progress: String?
    public var current: Int64?
    public var total: Int64?

    public init(status: String, id: String? = nil, progress: String? = nil, current: Int64? = nil, total: Int64? = nil) {
        self.status = status
        self.id = id
        self.progress = progress
        self.current = current
        self.total = total
    }
}

/// An image reference split the way `POST /images/create` wants it: `fromImage` and `tag`.
struct ImageReference: Equatable {
    var repository: String
    /// nil when the reference pins a digest (`repo@sha256:…`), which goes whole in `fromImage`.
    var tag: String?

    init(_ reference: String) throws(BDockerError) {
        guard !reference.isEmpty, !reference.contains(where: \.isWhitespace) else {
            throw .invalidInput("invalid image reference \"\(reference)\"")
        }
        if reference.contains("@") {
            repository = reference
            tag = nil
            return
        }
        // A ":" before the last "/" belongs to a registry port (host:5000/repo), not a tag.
        let nameStart = reference.lastIndex(of: "/").map { reference.index(after: $0) } ?? reference.startIndex
        if let colon = reference[nameStart...].lastIndex(of: ":") {
            repository = String(reference[..<colon])
            tag = String(reference[reference.index(after: colon)...])
        } else {
            repository = reference
            tag = "latest"
        }
        guard !repository.isEmpty, tag != "" else { throw .invalidInput("invalid image reference \"\(reference)\"") }
    }

    var query: [(String, String)] {
        [("fromImage", repository)] + (tag.map { [("tag", $0)] } ?? [])
    }
}

/// One line of the pull stream. A failure after the 200 head arrives as a line with `error`.
struct PullMessage: Decodable {
    struct Detail: Decodable {
        var current: Int64?
        var total: Int64?
    }

    var status: String?
    var id: String?
    var progress: String?
    var progressDetail: Detail?
    var error: String?

    var asProgress: PullProgress? {
        status.map {
            PullProgress(status: $0, id: id, progress: progress, current: progressDetail?.current,
                         total: progressDetail?.total)
        }
    }
}

/// Classifies a failed pull by the engine's message, since the engine reports a missing image
/// and an unreachable registry alike as HTTP 500 or as an error line in a 200 stream.
enum PullFailure {
    static func error(reference: String, message: String, status: UInt? = nil) -> BDockerError {
        let text = message.lowercased()
        let missing = ["manifest unknown", "not found", "does not exist", "no such image"]
        let unreachable = ["dial tcp", "connection refused", "no such host", "timeout", "connection reset",
                           "network is unreachable", "server gave http response to https client", "tls:", "x509",
                           "unexpected http status", "eof"]
        if missing.contains(where: text.contains) {
            return .notFound("cannot pull \(reference): \(message)")
        }
        if unreachable.contains(where: text.contains) {
            return .unavailable("cannot pull \(reference), the registry is unreachable: \(message)")
        }
        if let status, status < 500 {
            return BDockerError.fromHTTP(status: Int(status), message: "cannot pull \(reference): \(message)")
        }
        return .internalFault("cannot pull \(reference): \(message)")
    }
}

/// Cuts a byte stream into lines across chunk boundaries (the pull stream is JSON lines).
struct LineSplitter {
    private var pending = ByteBuffer()

    /// The complete lines (without "\n") that `chunk` finishes.
    mutating func feed(_ chunk: ByteBuffer) -> [ByteBuffer] {
        pending.writeImmutableBuffer(chunk)
        var lines: [ByteBuffer] = []
        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let line = pending.readSlice(length: newline - pending.readerIndex)!
            pending.moveReaderIndex(forwardBy: 1)
            lines.append(line)
        }
        pending.discardReadBytes()
        return lines
    }

    /// A last line the stream did not end with "\n".
    mutating func finish() -> ByteBuffer? {
        pending.readableBytes > 0 ? pending.readSlice(length: pending.readableBytes) : nil
    }
}
