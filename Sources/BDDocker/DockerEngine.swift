import AsyncHTTPClient
import BDCore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A client of the Docker Engine API (v1.41, Docker 20.10 and later), speaking only the calls
/// bdocker needs. Every failure is a `BDockerError`: engine replies map by status (404 →
/// notFound, 409 → conflict, 400 → invalidInput, 500 → internalFault, 502–504 → unavailable),
/// and an engine that cannot be reached or does not answer in time is `.unavailable`.
///
/// Calls that answer at once get `timeout` for the whole exchange. Calls that last as long as
/// a container or a transfer (`wait`, `attach`, followed `logs`, archives, the pull stream)
/// bound only the wait for the engine's first reply, or nothing when that reply itself waits
/// for the upload or the container.
public struct DockerEngine: Sendable {
    /// The highest API version the oldest supported engine (20.10) speaks.
    static let apiVersion = "v1.41"

    let endpoint: EngineEndpoint
    let timeout: Duration
    let http: HTTPClient
    let logger: Logger

    /// - Parameter baseURL: `[dockerAPI] base_url`, e.g. `unix:///var/run/docker.sock` or `tcp://host:2375`.
    /// - Parameter http: must not have a read timeout (see `defaultHTTPClient`).
    public init(baseURL: String, timeoutSeconds: Int = 60, http: HTTPClient = DockerEngine.defaultHTTPClient,
                logger: Logger = Logger(label: "bdocker.docker")) throws(BDockerError) {
        guard timeoutSeconds > 0 else { throw .invalidInput("the Docker engine timeout must be positive, not \(timeoutSeconds)") }
        endpoint = try EngineEndpoint(baseURL)
        timeout = .seconds(timeoutSeconds)
        self.http = http
        self.logger = logger
    }

    /// The client engines use unless given one. Not `HTTPClient.shared`: that one drops a reply
    /// silent for 90 s, and `wait`, `attach` and followed logs stay silent while a job runs.
    /// It also retries a refused connection until the call's deadline; an engine that is down
    /// should be reported at once instead.
    public static let defaultHTTPClient: HTTPClient = {
        var pool = HTTPClient.Configuration.ConnectionPool()
        pool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                          configuration: .init(timeout: .init(connect: .seconds(10), read: nil), connectionPool: pool))
    }()

    /// The URL as configured, for messages.
    public var baseURL: String { endpoint.configured }

    /// Succeeds when the engine answers; use it to fail early with a clear message.
    public func ping() async throws(BDockerError) {
        _ = try await call(.GET, "/_ping")
    }

    public func version() async throws(BDockerError) -> EngineVersion {
        try await call(.GET, "/version").decoded(EngineVersion.self, what: "version")
    }

    /// `GET /info`, passed through to the user as the engine wrote it.
    public func info() async throws(BDockerError) -> JSONValue {
        try await call(.GET, "/info").decoded(JSONValue.self, what: "info")
    }
}

// MARK: - Transport

/// A reply read in full.
struct EngineReply: Sendable {
    var status: UInt
    var body: ByteBuffer

    func decoded<T: Decodable>(_ type: T.Type, what: String) throws(BDockerError) -> T {
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch {
            throw .internalFault("unexpected \(what) reply from the Docker engine: \(String(buffer: body).prefix(300))")
        }
    }
}

extension DockerEngine {
    /// Replies this large are not what bdocker asked for; stop reading rather than fill memory.
    static let maxReplyBytes = 64 << 20

    /// A call with a small reply, read in full. The whole exchange, head and body, must end
    /// within `timeout` (default: the engine's), so a wedged engine cannot hang a caller. Any
    /// status outside 2xx/304 becomes the matching error.
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [],
              json: (any Encodable & Sendable)? = nil, timeout: Duration? = nil) async throws(BDockerError) -> EngineReply {
        let limit = timeout ?? self.timeout
        let reply = try await withTimeout(limit, doing: "\(method) \(path)") { () async throws(BDockerError) in
            let response = try await send(method, path, query: query, json: json, headDeadline: .now() + TimeAmount(limit))
            return EngineReply(status: response.status.code, body: try await collect(response.body, of: path))
        }
        try Self.check(reply, path: path)
        return reply
    }

    /// A call whose reply is read as it streams. Waits at most `headTimeout` (nil: forever)
    /// for the reply's head, then checks its status; the caller reads the body. `failure`
    /// turns an error status and the engine's message into the error to throw.
    func open(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [],
              body: HTTPClientRequest.Body? = nil, contentType: String? = nil, headTimeout: Duration?,
              failure: @Sendable (_ status: UInt, _ message: String) -> BDockerError = DockerEngine.failure
    ) async throws(BDockerError) -> HTTPClientResponse {
        let deadline = headTimeout.map { NIODeadline.now() + TimeAmount($0) } ?? .distantFuture
        let response = try await send(method, path, query: query, body: body, contentType: contentType, headDeadline: deadline)
        guard (200..<300).contains(response.status.code) else {
            // Error bodies are a short JSON message; give it the normal timeout.
            let reply = try await withTimeout(timeout, doing: "reading the error of \(method) \(path)") { () async throws(BDockerError) in
                EngineReply(status: response.status.code, body: try await collect(response.body, of: path))
            }
            throw failure(reply.status, Self.message(of: reply, path: path))
        }
        return response
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [(String, String)], json: (any Encodable & Sendable)?,
                      headDeadline: NIODeadline) async throws(BDockerError) -> HTTPClientResponse {
        guard let json else { return try await send(method, path, query: query, body: nil, contentType: nil, headDeadline: headDeadline) }
        let data: Data
        do {
            data = try JSONEncoder().encode(json)
        } catch {
            throw .internalFault("cannot encode the request to the Docker engine: \(error)")
        }
        return try await send(method, path, query: query, body: .bytes(ByteBuffer(data: data)),
                              contentType: "application/json", headDeadline: headDeadline)
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: HTTPClientRequest.Body?,
                      contentType: String?, headDeadline: NIODeadline) async throws(BDockerError) -> HTTPClientResponse {
        var request = HTTPClientRequest(url: endpoint.origin + "/" + Self.apiVersion + path + Self.queryString(query))
        request.method = method
        if let host = endpoint.hostHeader { request.headers.add(name: "Host", value: host) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        request.body = body
        do {
            return try await http.execute(request, deadline: headDeadline, logger: logger)
        } catch {
            throw unreachable(error)
        }
    }

    private func collect(_ body: HTTPClientResponse.Body, of path: String) async throws(BDockerError) -> ByteBuffer {
        do {
            return try await body.collect(upTo: Self.maxReplyBytes)
        } catch {
            throw lostConnection(error, reading: path)
        }
    }

    /// Runs `body`, giving up after `limit`. AsyncHTTPClient's own deadline covers only the
    /// wait for the reply's head; this one also covers the body.
    func withTimeout<T: Sendable>(_ limit: Duration, doing what: String,
                                  _ body: @escaping @Sendable () async throws(BDockerError) -> T) async throws(BDockerError) -> T {
        let outcome = await withTaskGroup(of: Result<T, BDockerError>?.self) { group in
            group.addTask { await Result { () async throws(BDockerError) in try await body() } }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // The sleeper also returns early when the caller is cancelled: then wait for the call to wind down.
            if first == nil, Task.isCancelled { return await group.next() ?? nil }
            return first
        }
        guard let outcome else {
            throw .unavailable("cannot reach the Docker engine at \(endpoint.configured): no answer to \(what) within \(limit.components.seconds) s")
        }
        return try outcome.get()
    }

    /// Throws for a reply outside 2xx; 304 ("already started/stopped") counts as success.
    static func check(_ reply: EngineReply, path: String) throws(BDockerError) {
        guard !(200..<300).contains(reply.status), reply.status != 304 else { return }
        throw failure(status: reply.status, message: message(of: reply, path: path))
    }

    /// The usual mapping of an engine error status: 404 → notFound, 409 → conflict, 400 → invalidInput, ….
    static func failure(status: UInt, message: String) -> BDockerError {
        BDockerError.fromHTTP(status: Int(status), message: message)
    }

    /// The engine's `{"message": …}`, or the body as text.
    static func message(of reply: EngineReply, path: String) -> String {
        let text = (try? JSONDecoder().decode(EngineMessage.self, from: reply.body).message)
            ?? String(buffer: reply.body).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "the Docker engine answered \(path) with HTTP \(reply.status)" : text
    }

    func unreachable(_ error: any Error) -> BDockerError {
        if let error = error as? HTTPClientError, error == .deadlineExceeded {
            return .unavailable("cannot reach the Docker engine at \(endpoint.configured): no answer within the timeout")
        }
        return .unavailable("cannot reach the Docker engine at \(endpoint.configured): \(error)")
    }

    func lostConnection(_ error: any Error, reading path: String) -> BDockerError {
        .unavailable("lost the connection to the Docker engine at \(endpoint.configured) while reading \(path): \(error)")
    }

    static func queryString(_ items: [(String, String)]) -> String {
        guard !items.isEmpty else { return "" }
        return "?" + items.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    /// Percent-encodes all but RFC 3986's unreserved characters: for a path segment, a query
    /// value (ids, names, paths, JSON filters) or a socket path in a URL's host.
    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved)!
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
