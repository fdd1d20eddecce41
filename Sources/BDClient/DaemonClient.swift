import AsyncHTTPClient
import BDCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Talks to a bdocker daemon: JSON in the `{"status_code", "results"}` envelope out, errors
/// rebuilt as `BDockerError` from the reply's status.
public struct DaemonClient: Sendable {
    public let endpoint: String
    public let timeout: TimeAmount
    let http: HTTPClient

    /// - Parameter endpoint: `unix:///path/to.sock` (or just the socket's absolute path), or
    ///   `host:port` / `http://host:port` for TCP.
    public init(endpoint: String, timeoutSeconds: Int = 500, http: HTTPClient = .failingFast) {
        var e = endpoint
        if e.hasPrefix("/") { e = "unix://" + e }
        if e.hasPrefix("unix://") {
            // AsyncHTTPClient's form: the socket path, percent-encoded, as the host.
            let path = String(e.dropFirst("unix://".count))
            e = "http+unix://" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path)
        } else if !e.contains("://") {
            e = "http://" + e
        }
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.timeout = .seconds(Int64(timeoutSeconds))
        self.http = http
    }

    /// Sends `body` as JSON (or `query` as the URL's query for GET) and decodes `results`.
    public func call<Results: Codable & Sendable>(
        _ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil,
        query: [String: String] = [:], as: Results.Type = Results.self
    ) async throws(BDockerError) -> Results {
        let (status, data) = try await raw(method, path, body: body, query: query)
        if (200..<300).contains(status) {
            do {
                return try JSONDecoder().decode(Envelope<Results>.self, from: data).results
            } catch {
                throw .internalFault("unexpected reply from \(endpoint)\(path): \(String(decoding: data.prefix(200), as: UTF8.self))")
            }
        }
        throw Self.error(status: status, data: data)
    }

    /// The status and body of one call, for callers that stream or read replies themselves.
    public func raw(_ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil,
                    query: [String: String] = [:]) async throws(BDockerError) -> (Int, Data) {
        let response = try await send(method, path, body: body, query: query)
        do {
            let buffer = try await response.body.collect(upTo: 256 << 20)
            return (Int(response.status.code), Data(buffer: buffer))
        } catch {
            throw .unavailable("reading the reply from \(endpoint)\(path) failed: \(error)")
        }
    }

    /// Sends the request and returns the response with its body still streaming.
    public func send(_ method: HTTPMethod, _ path: String, body: (any Encodable & Sendable)? = nil,
                     query: [String: String] = [:]) async throws(BDockerError) -> HTTPClientResponse {
        var encoded: HTTPClientRequest.Body?
        if let body {
            do {
                encoded = .bytes(ByteBuffer(data: try JSONEncoder().encode(body)))
            } catch {
                throw .internalFault("cannot encode the request: \(error)")
            }
        }
        return try await send(method, path, body: encoded, contentType: "application/json", query: query)
    }

    /// Sends a request with `body` as it is (a stream, for an attached run's frames) and
    /// returns the response with its body still streaming.
    public func send(_ method: HTTPMethod, _ path: String, body: HTTPClientRequest.Body?, contentType: String,
                     query: [String: String] = [:]) async throws(BDockerError) -> HTTPClientResponse {
        var url = endpoint + path
        if !query.isEmpty {
            var components = URLComponents()
            components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            url += "?" + (components.percentEncodedQuery ?? "")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = body
        }
        do {
            return try await http.execute(request, timeout: timeout)
        } catch {
            throw .unavailable("cannot reach bdockerd at \(displayEndpoint): \(Self.describe(error))")
        }
    }

    /// The endpoint as people write it (`unix:///run/bdocker/bdockerd.sock`), for messages.
    public var displayEndpoint: String {
        guard endpoint.hasPrefix("http+unix://") else { return endpoint }
        return "unix://" + (String(endpoint.dropFirst("http+unix://".count)).removingPercentEncoding ?? endpoint)
    }

    public static func error(status: Int, data: Data) -> BDockerError {
        let message = (try? JSONDecoder().decode(Envelope<String>.self, from: data).results)
            ?? String(decoding: data.prefix(300), as: UTF8.self)
        return BDockerError.fromHTTP(status: status, message: message.isEmpty ? "HTTP \(status)" : message)
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused (is bdockerd running?)" }
        if text.contains("No such file or directory") || text.contains("ENOENT") { return "no socket there (is bdockerd running?)" }
        if text.contains("deadlineExceeded") || text.contains("readTimeout") { return "timed out" }
        return text
    }
}

extension HTTPClient {
    /// A client that reports a refused connection at once (`Configuration.failingFast`).
    public static let failingFast = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .failingFast)
}

extension HTTPClient.Configuration {
    /// What every bdocker client is made from: a refused connection is reported at once.
    /// AsyncHTTPClient's default retries connection establishment until the request's
    /// deadline, which for a daemon that is down turns one clear error into a minute-long
    /// hang. Callers that want retries (the outbox sender) make their own, with backoff they
    /// control.
    public static var failingFast: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return configuration
    }
}
