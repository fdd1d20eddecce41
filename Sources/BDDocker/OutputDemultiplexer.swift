import BDCore
import NIOCore

/// Which of a container's two output streams some bytes were written to.
public enum OutputChannel: Sendable, Equatable {
    case stdout
    case stderr
}

/// A piece of container output, tagged with the stream the program wrote it to.
public struct OutputFrame: Sendable, Equatable {
    public var channel: OutputChannel
    public var payload: ByteBuffer

    public init(channel: OutputChannel, payload: ByteBuffer) {
        self.channel = channel
        self.payload = payload
    }
}

/// Splits the engine's multiplexed output of a container without a TTY (logs, attach) back
/// into stdout and stderr. Each frame is an 8-byte header — stream byte (0 stdin, 1 stdout,
/// 2 stderr), three zero bytes, big-endian UInt32 payload length — then the payload. HTTP
/// body chunks cut frames anywhere, so an unfinished frame is kept until the next chunk.
public struct OutputDemultiplexer: Sendable {
    private static let headerLength = 8
    private var pending = ByteBuffer()

    public init() {}

    /// Adds one chunk of the stream and returns the frames it completed, in stream order.
    public mutating func feed(_ chunk: ByteBuffer) throws(BDockerError) -> [OutputFrame] {
        pending.writeImmutableBuffer(chunk)
        var frames: [OutputFrame] = []
        while let header = pending.getBytes(at: pending.readerIndex, length: Self.headerLength) {
            // Check the header before waiting for the payload: raw TTY output read as a header
            // would claim a length of gigabytes.
            let channel: OutputChannel
            switch (header[0], header[1...3].allSatisfy { $0 == 0 }) {
            // The engine documents stdin frames as written to stdout.
            case (0, true), (1, true): channel = .stdout
            case (2, true): channel = .stderr
            default:
                throw .internalFault("the Docker engine sent container output in an unknown framing; was the container created with a TTY?")
            }
            let length = header[4...].reduce(0) { $0 << 8 | Int($1) }
            guard pending.readableBytes >= Self.headerLength + length else { break }
            pending.moveReaderIndex(forwardBy: Self.headerLength)
            frames.append(OutputFrame(channel: channel, payload: pending.readSlice(length: length)!))
        }
        // Keep memory bounded on long streams: what is left is at most one unfinished frame.
        pending.discardReadBytes()
        return frames
    }

    /// To call when the stream ends: a partial frame left over means output was cut off.
    public func finish() throws(BDockerError) {
        guard pending.readableBytes == 0 else {
            throw .unavailable("the container output stream from the Docker engine ended in the middle of a frame")
        }
    }
}
