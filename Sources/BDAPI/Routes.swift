import BDCore
import BDStore
import Hummingbird
import Logging

/// The HTTP surface of each role.
public enum Routes {
    /// Routes of the working-node daemon.
    public static func working(_ node: WorkingNode) -> Router<BDContext> {
        let router = base(logger: node.logger, database: node.database, role: "working")
        router.post("configuration") { request, _ -> Response in
            var request = request
            let body = try await request.decodeJSON(ConfigureRequest.self)
            let (token, job) = try await node.configure(body)
            node.logger.info("configured job \(job.jobKey) for \(job.user) (uid \(job.uid))")
            return JSONReply.make(token, status: .created)
        }
        router.delete("clean") { request, _ -> Response in
            var request = request
            let body = try await request.decodeJSON(CleanRequest.self)
            let job = try await node.clean(body)
            node.logger.info("cleaned job \(job.jobKey)")
            return JSONReply.make("job \(job.jobKey) cleaned")
        }
        return router
    }

    /// What both roles serve: the error envelope and `GET /status`.
    static func base(logger: Logger, database: BDockerDatabase, role: String) -> Router<BDContext> {
        let router = Router(context: BDContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(logger: logger))
        router.get("status") { _, _ -> Response in
            JSONReply.make(StatusResult(role: role, version: BDockerVersion.current, database: database.path,
                                        migrations: database.appliedMigrations))
        }
        return router
    }
}
