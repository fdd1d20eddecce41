import AsyncHTTPClient

/// Runs `body` with a daemon client on an HTTP client of its own that opens up to
/// `connections` connections at once, and shuts that client down afterwards, failure or not.
/// For tests and benchmarks that send from many tasks through one client: with
/// AsyncHTTPClient's default of 8 per host the rest queue for a connection (a "16 clients"
/// figure would measure 8), and on a loaded machine a queued request gives up after the
/// connect timeout (10 s) although the daemon is only slow.
public func withConcurrentClient<T: Sendable>(endpoint: String, connections: Int = 16,
                                              _ body: (DaemonClient) async throws -> T) async throws -> T {
    var configuration = HTTPClient.Configuration.failingFast
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connections
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    let result: T
    do {
        result = try await body(DaemonClient(endpoint: endpoint, http: http))
    } catch {
        try? await http.shutdown()
        throw error
    }
    try await http.shutdown()
    return result
}
