import BDCore
import BDMetrics
import Hummingbird
import Logging
import NIOCore

/// `GET /health`, `GET /ready` and `GET /metrics`, on both roles. None needs a token and none
/// says anything about a user or a job (metrics labels are fixed sets of words), so a
/// monitoring system can ask without credentials.
struct HealthEndpoints: Sendable {
    /// Nil: the daemon keeps no metrics (`/metrics` answers 404).
    let metrics: DaemonMetrics?
    /// Sets the gauges read from the store and the engine, just before a scrape.
    let refresh: @Sendable () async -> Void
    let readiness: @Sendable () async -> ReadinessResult
    /// `/ready` writes to the database: asked more often than this, it answers what it found last.
    let cache = ReadinessCache(maxAge: .seconds(1))
    static let paths = ["health", "ready", "metrics"]

    func add(to router: Router<BDContext>, role: String) {
        // Liveness: the daemon's event loop and request handling work; nothing else is checked,
        // so a restart is never triggered by a dependency that is down.
        router.get("health") { _, _ -> Response in
            JSONReply.make(HealthResult(alive: true, role: role))
        }
        router.get("ready") { _, _ -> Response in
            let result = await cache.value(refreshing: readiness)
            return JSONReply.make(result, status: result.ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ -> Response in
            guard let metrics else { throw BDockerError.notFound("this daemon keeps no metrics") }
            await refresh()
            return Response(status: .ok, headers: [.contentType: DaemonMetrics.contentType],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }
}

/// `GET /health`.
struct HealthResult: Codable, Sendable {
    var alive: Bool
    var role: String
}

/// The last readiness found, reused while younger than `maxAge`; one check at a time.
actor ReadinessCache {
    let maxAge: Duration
    private var last: (at: ContinuousClock.Instant, result: ReadinessResult)?

    init(maxAge: Duration) { self.maxAge = maxAge }

    func value(refreshing check: @Sendable () async -> ReadinessResult) async -> ReadinessResult {
        if let last, ContinuousClock.now - last.at < maxAge { return last.result }
        let result = await check()
        last = (ContinuousClock.now, result)
        return result
    }
}

extension Routes {
    /// The monitoring paths of `full` alone, for `[server] metrics_port`: a port that can be
    /// opened to the monitoring network without exposing any other call.
    public static func monitoringOnly(_ full: Router<BDContext>, logger: Logger) -> Router<BDContext> {
        let responder = full.buildResponder()
        let router = Router(context: BDContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(logger: logger))
        for path in HealthEndpoints.paths {
            router.get(RouterPath(path)) { request, context in try await responder.respond(to: request, context: context) }
        }
        return router
    }
}
