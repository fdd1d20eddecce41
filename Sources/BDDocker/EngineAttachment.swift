import BDCore
import Foundation
import NIOCore
import NIOPosix

extension DockerEngine {
    /// Attaches to a created container's stdin (with `stdin`), stdout and stderr over a
    /// hijacked connection, runs `body` with it, then closes it. Call `start` inside `body`: the
    /// engine hooks the streams up before it answers, so no output is lost.
    ///
    /// The engine's attach turns its HTTP connection into a raw two-way stream, which
    /// AsyncHTTPClient cannot do, so this one call speaks HTTP/1.1 itself over a plain NIO
    /// connection: the request with `Connection: Upgrade` / `Upgrade: tcp`, the answer's head
    /// (`101 UPGRADED`, or `200` from engines that hijack without saying so), then the stream.
    public func withAttachment<T: Sendable>(
        _ id: String, stdin: Bool, tty: Bool, _ body: (EngineAttachment) async throws(BDockerError) -> T
    ) async throws(BDockerError) -> T {
        guard let socket = endpoint.socket else {
            throw .unavailable("attaching stdin or a terminal needs the Docker engine on a unix socket or plain tcp, not \(endpoint.configured)")
        }
        let path = "/containers/\(Self.escape(id))/attach"
        let query = Self.queryString([("stream", "1"), ("stdin", stdin ? "1" : "0"), ("stdout", "1"), ("stderr", "1")])
        let head = "POST /\(Self.apiVersion)\(path)\(query) HTTP/1.1\r\nHost: \(endpoint.hostHeader ?? "docker")\r\n"
            + "Content-Type: text/plain\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                // The engine may end its side first; stdin is closed by us, on our side only.
                .channelOption(.allowRemoteHalfClosure, value: true)
            let wrap: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
            switch socket {
            case .unix(let socketPath): channel = try await bootstrap.connect(unixDomainSocketPath: socketPath, channelInitializer: wrap)
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port, channelInitializer: wrap)
            }
        } catch {
            throw unreachable(error)
        }
        let limit = timeout
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // The answer's head must come within the engine's timeout; the stream after it may last forever.
                let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { channel.channel.close(promise: nil) }
                defer { deadline.cancel() }
                try await outbound.write(ByteBuffer(string: head))
                var iterator = inbound.makeAsyncIterator()
                var handshake = HijackHandshake()
                var answer: HijackHandshake.Head?
                while answer == nil {
                    guard let chunk = try await iterator.next() else {
                        throw BDockerError.unavailable("the Docker engine closed the connection before answering POST \(path) (or did not answer within \(limit.components.seconds) s)")
                    }
                    answer = try handshake.feed(chunk)
                }
                guard let answer else { throw BDockerError.internalFault("unreachable") }
                guard answer.status == 101 || answer.status == 200 else {
                    // An error: a short JSON message, read up to its length or the end.
                    var message = answer.rest
                    while answer.contentLength.map({ message.readableBytes < $0 }) ?? true, message.readableBytes < Self.maxHandshakeErrorBytes,
                          var chunk = try await iterator.next() {
                        message.writeBuffer(&chunk)
                    }
                    let reply = EngineReply(status: UInt(answer.status), body: message)
                    throw Self.failure(status: reply.status, message: Self.message(of: reply, path: path))
                }
                deadline.cancel()
                let attachment = EngineAttachment(path: path, tty: tty, iterator: iterator, pending: answer.rest,
                                                  input: AttachmentInput(writer: outbound, channel: channel.channel),
                                                  lostConnection: { lostConnection($0, reading: path) })
                return try await body(attachment)
            }
        } catch let error as BDockerError {
            throw error
        } catch {
            throw lostConnection(error, reading: path)
        }
    }

    static let maxHandshakeErrorBytes = 64 << 10

    /// Sets the size of a running container's terminal (`-t`), as `docker run` does at start and
    /// whenever the user's window changes.
    public func resize(_ id: String, to size: TerminalSize) async throws(BDockerError) {
        _ = try await call(.POST, "/containers/\(Self.escape(id))/resize", query: [("h", String(size.height)), ("w", String(size.width))])
    }
}

/// A container attached to over a hijacked connection: its output to read (once, by one task)
/// and its stdin to write (`input`, from any task).
public final class EngineAttachment {
    public let input: AttachmentInput
    let path: String
    let tty: Bool
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    /// Stream bytes that came in the same read as the answer's head.
    var pending: ByteBuffer?
    let lostConnection: @Sendable (any Error) -> BDockerError

    init(path: String, tty: Bool, iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, pending: ByteBuffer,
         input: AttachmentInput, lostConnection: @escaping @Sendable (any Error) -> BDockerError) {
        self.path = path
        self.tty = tty
        self.iterator = iterator
        self.pending = pending.readableBytes > 0 ? pending : nil
        self.input = input
        self.lostConnection = lostConnection
    }

    /// Streams the container's output to `onOutput` until the engine ends it (the container
    /// stopped). A terminal's output is one raw stream, passed on as stdout; without a
    /// terminal it is demultiplexed into stdout and stderr.
    public func streamOutput(to onOutput: (OutputFrame) async throws(BDockerError) -> Void) async throws(BDockerError) {
        var demultiplexer = OutputDemultiplexer()
        while true {
            let chunk: ByteBuffer
            if let first = pending {
                chunk = first
                pending = nil
            } else {
                do {
                    guard let next = try await iterator.next() else { break }
                    chunk = next
                } catch {
                    throw lostConnection(error)
                }
            }
            if tty {
                try await onOutput(OutputFrame(channel: .stdout, payload: chunk))
            } else {
                for frame in try demultiplexer.feed(chunk) { try await onOutput(frame) }
            }
        }
        if !tty { try demultiplexer.finish() }
    }
}

/// The writing side of an attachment: bytes for the container's stdin, and its end.
public struct AttachmentInput: Sendable {
    let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel

    /// Waits while the engine (the container) does not take more: a container that does not
    /// read its stdin slows the writer down instead of filling the daemon's memory.
    public func write(_ bytes: ByteBuffer) async throws(BDockerError) {
        do {
            try await writer.write(bytes)
        } catch {
            throw .unavailable("writing to the container's stdin failed: \(error)")
        }
    }

    /// EOF for the container's stdin: the connection's sending side is shut, as docker's own
    /// client does, and the engine closes the container's stdin.
    public func closeStdin() {
        writer.finish()
    }

    /// Drops the connection, so a write still waiting fails at once (the container is gone).
    public func hangUp() {
        channel.close(promise: nil)
    }
}

/// Reads the head of the engine's answer to a hijacking request from raw bytes: the status
/// line and the headers, up to the blank line. Whatever follows is the stream (or an error's
/// body), returned as `rest`.
struct HijackHandshake {
    struct Head: Equatable {
        var status: Int
        var contentLength: Int?
        var rest: ByteBuffer
    }

    static let maxHeadBytes = 64 << 10
    private var buffer = ByteBuffer()

    /// Adds bytes; returns the head once it is complete.
    mutating func feed(_ chunk: ByteBuffer) throws(BDockerError) -> Head? {
        var chunk = chunk
        buffer.writeBuffer(&chunk)
        let bytes = buffer.readableBytesView
        guard let end = Self.endOfHead(in: bytes) else {
            guard bytes.count <= Self.maxHeadBytes else {
                throw .internalFault("the Docker engine's answer to attach has no end of its head within \(Self.maxHeadBytes) bytes")
            }
            return nil
        }
        let text = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
            throw .internalFault("the Docker engine's answer to attach is not HTTP: \(text.prefix(80))")
        }
        var contentLength: Int?
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "content-length" {
                contentLength = Int(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
        }
        buffer.moveReaderIndex(forwardBy: end + 4 - bytes.startIndex)
        return Head(status: status, contentLength: contentLength, rest: buffer.slice())
    }

    /// The index of the "\r\n\r\n" that ends the head.
    static func endOfHead(in bytes: ByteBufferView) -> Int? {
        var i = bytes.startIndex
        while i + 3 < bytes.endIndex {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }
}
