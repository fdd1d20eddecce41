import BDCore
import BDCredentials
import BDDocker
import Foundation
import Hummingbird
import Logging
import NIOCore

/// A streamed reply in `StreamFrames` format. `produce` writes frames through the sink; its
/// result or error becomes the final envelope frame, so a failure after the first byte still
/// reaches the client with its status.
///
/// Back-pressure: each `send` waits until the connection has taken the frame, and the engine's
/// stream is read only between sends, so a slow client slows the engine read (and the
/// container's writes) instead of growing the daemon's memory. A client that goes away makes
/// the next `send` throw, which stops the producer; the container itself keeps running.
enum StreamReply {
    /// A way for `produce` to send frames, one at a time.
    final class Sink: @unchecked Sendable {
        // @unchecked: only the response's own task uses the writer, and `produce` awaits each
        // send before the next, so no two calls overlap.
        private var writer: any ResponseBodyWriter
        /// Set once a write failed: the client is gone and nothing more can reach it.
        private(set) var lost = false

        init(_ writer: any ResponseBodyWriter) {
            self.writer = writer
        }

        func send(_ kind: StreamFrameKind, _ payload: ByteBuffer) async throws(BDockerError) {
            var buffer = ByteBuffer(bytes: StreamFrames.header(kind, length: payload.readableBytes))
            buffer.writeImmutableBuffer(payload)
            do {
                try await writer.write(buffer)
            } catch {
                lost = true
                throw .unavailable("the client stopped reading the stream: \(error)")
            }
        }

        func send(_ frame: OutputFrame) async throws(BDockerError) {
            try await send(frame.channel == .stdout ? .stdout : .stderr, frame.payload)
        }

        func finish() async throws {
            try await writer.finish(nil)
        }
    }

    /// - Parameter input: a framed request body (an attached run's stdin) read alongside
    ///   `produce`, which takes its frames from `input.inbox`. Its hold on the connection ends
    ///   before the end frame; after that frame the body is read (and dropped) until the
    ///   client hangs up, or for a few seconds at most.
    static func make<T: Codable & Sendable>(
        _ request: Request, logger: Logger, caller: Caller? = nil, input: FramedInput? = nil,
        _ produce: @escaping @Sendable (Sink) async throws(BDockerError) -> T
    ) -> Response {
        Response(status: .ok, headers: [.contentType: StreamFrames.contentType], body: ResponseBody { writer in
            let sink = Sink(writer)
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let input { group.addTask { await input.readBody(logger: logger) } }
                let end: ByteBuffer
                do {
                    end = JSONReply.envelope(try await produce(sink))
                } catch {
                    input?.close()
                    // Nobody is left to tell; failing the body closes the connection.
                    if sink.lost { throw error }
                    end = ErrorReply.envelope(for: error, request: request, logger: logger, caller: caller).body
                }
                input?.close()
                try await sink.send(.end, end)
                try await sink.finish()
                guard input != nil else { return }
                // The body is Hummingbird's to drain once the reply is done, so its reader ends
                // here: at once when the client hangs up on the end frame, as bdocker does.
                group.addTask { try? await Task.sleep(for: .seconds(5)) }
                _ = try await group.next()
                group.cancelAll()
            }
        })
    }
}
