import AsyncHTTPClient
import BDCore
import Foundation
import NIOCore
import NIOHTTP1

extension DaemonClient {
    /// Calls an endpoint that streams (`run`, `logs`, `pull`): output and progress frames go to
    /// `onFrame` as they arrive; the final envelope's results are returned, or its error thrown.
    /// A plain JSON reply (an error before the stream began) is handled like `call`.
    public func streamed<Results: Codable & Sendable>(
        _ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil, query: [String: String] = [:],
        as: Results.Type = Results.self, onFrame: (StreamFrameKind, [UInt8]) -> Void
    ) async throws(BDockerError) -> Results {
        let response = try await send(method, path, body: body, query: query)
        return try await read(response, path, onFrame: onFrame)
    }

    /// `streamed` with a request body of frames that the caller produces as it goes: an
    /// attached run's request, stdin and terminal sizes (`StreamFrames`).
    public func streamed<Results: Codable & Sendable, Frames: AsyncSequence & Sendable>(
        _ method: HTTPMethod, _ path: String, frames: Frames, as: Results.Type = Results.self,
        onFrame: (StreamFrameKind, [UInt8]) -> Void
    ) async throws(BDockerError) -> Results where Frames.Element == [UInt8] {
        let body = frames.map { ByteBuffer(bytes: $0) }
        let response = try await send(method, path, body: .stream(body, length: .unknown), contentType: StreamFrames.contentType)
        return try await read(response, path, onFrame: onFrame)
    }

    /// Reads a streamed reply (or a plain JSON one: an error before the stream began).
    func read<Results: Codable & Sendable>(_ response: HTTPClientResponse, _ path: String,
                                           onFrame: (StreamFrameKind, [UInt8]) -> Void) async throws(BDockerError) -> Results {
        let isStream = response.headers.first(name: "Content-Type") == StreamFrames.contentType
        var reader = StreamFrameReader()
        var plain = Data()
        var end: [UInt8]?
        try await BDockerError.mapping({ .unavailable("the reply from \(endpoint)\(path) was cut off: \($0)") }) {
            for try await chunk in response.body {
                if !isStream {
                    plain.append(contentsOf: chunk.readableBytesView)
                    continue
                }
                let frames: [(StreamFrameKind, [UInt8])]
                do throws(BDockerError) {
                    frames = try reader.feed(Array(chunk.readableBytesView))
                } catch {
                    throw BDockerError.internalFault("the reply from \(endpoint)\(path) is not in bdocker's framing: \(error.message)")
                }
                for (kind, payload) in frames {
                    if kind == .end { end = payload } else { onFrame(kind, payload) }
                }
            }
        }
        guard isStream else {
            let status = Int(response.status.code)
            if (200..<300).contains(status), let value = try? JSONDecoder().decode(Envelope<Results>.self, from: plain) {
                return value.results
            }
            throw Self.error(status: status, data: plain)
        }
        guard let end else { throw .unavailable("the reply from \(endpoint)\(path) ended before its result") }
        let data = Data(end)
        if let value = try? JSONDecoder().decode(Envelope<Results>.self, from: data), value.statusCode < 300 {
            return value.results
        }
        let status = (try? JSONDecoder().decode(Envelope<String>.self, from: data).statusCode) ?? 500
        throw Self.error(status: status, data: data)
    }
}
