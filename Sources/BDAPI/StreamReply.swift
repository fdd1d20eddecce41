import BDCore
import BDDocker
import Foundation
import Hummingbird
import NIOCore

/// A streamed reply in `StreamFrames` format. `produce` writes frames through the sink; its
/// result or error becomes the final envelope frame, so a failure after the first byte still
/// reaches the client with its status.
enum StreamReply {
    /// A way for `produce` to send frames; safe to call from the engine's callbacks.
    struct Sink: Sendable {
        let continuation: AsyncStream<ByteBuffer>.Continuation

        func send(_ kind: StreamFrameKind, _ payload: ByteBuffer) {
            var buffer = ByteBuffer(bytes: StreamFrames.header(kind, length: payload.readableBytes))
            buffer.writeImmutableBuffer(payload)
            continuation.yield(buffer)
        }

        func send(_ frame: OutputFrame) {
            send(frame.channel == .stdout ? .stdout : .stderr, frame.payload)
        }
    }

    static func make<T: Codable & Sendable>(
        _ produce: @escaping @Sendable (Sink) async throws(BDockerError) -> T
    ) -> Response {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        let sink = Sink(continuation: continuation)
        let task = Task {
            let data: Data
            do {
                let value = try await produce(sink)
                data = (try? JSONReply.encoder.encode(Envelope(statusCode: 200, results: value))) ?? Data()
            } catch {
                let failure = error as? BDockerError ?? .internalFault("\(error)")
                data = (try? JSONReply.encoder.encode(Envelope(statusCode: failure.httpStatus, results: failure.message))) ?? Data()
            }
            sink.send(.end, ByteBuffer(data: data))
            continuation.finish()
        }
        // A client that goes away stops the producer (the container itself keeps running).
        continuation.onTermination = { _ in task.cancel() }
        return Response(status: .ok, headers: [.contentType: StreamFrames.contentType],
                        body: ResponseBody(asyncSequence: stream))
    }
}
