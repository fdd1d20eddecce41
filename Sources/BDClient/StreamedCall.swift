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
                for (kind, payload) in try reader.feed(Array(chunk.readableBytesView)) {
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
