import BDCore
import BDCredentials
import BDStore
import BDWorkingNode
import Hummingbird
import Logging

/// The HTTP surface of each role.
public enum Routes {
    /// Routes of the working-node daemon.
    public static func working(_ node: WorkingNode) -> Router<BDContext> {
        let router = base(logger: node.logger, database: node.database, role: "working",
                          health: HealthEndpoints(metrics: node.metrics.exposition, refresh: node.refreshGauges, readiness: node.readiness))
        router.post("configuration") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(ConfigureRequest.self)
            let (token, job) = try await node.configure(body, caller: context.caller)
            node.logger.info("configured job \(job.jobKey) for \(job.user) (uid \(job.uid))")
            return JSONReply.make(token, status: .created)
        }
        router.delete("clean") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(CleanRequest.self)
            let (job, accounted) = try await node.clean(body, caller: context.caller)
            node.logger.info("cleaned job \(job.jobKey)\(accounted ? "; accounting record queued" : "")")
            // Without cgroups nothing was measured, as the original reported.
            return JSONReply.make("job \(job.jobKey) cleaned" + (accounted ? "" : "; accounting unavailable (cgroups disabled)"))
        }
        router.put("join") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(JoinRequest.self)
            let job = try await node.join(body, caller: context.caller)
            node.logger.info("job \(job.jobKey): process \(body.pid) joined its cgroup")
            return JSONReply.make("process \(body.pid) joined job \(job.jobKey)")
        }
        router.put("notify_accounting") { _, context -> Response in
            try AccessPolicy.requireRoot(context.caller, for: "notify_accounting")
            guard let outbox = node.outbox else { throw BDockerError.unavailable("this node has no accounting outbox") }
            // Deliver what is pending now rather than at its next retry time.
            return try await BDockerError.wrapping("delivering accounting records failed") {
                try await node.database.pool.write { db in try OutboxRecord.makeAllDue(db) }
                try await outbox.deliverDue()
                return JSONReply.make(try await outbox.summary())
            }
        }
        containerRoutes(router, node)
        return router
    }

    /// The user commands, named as in the original bdocker API.
    static func containerRoutes(_ router: Router<BDContext>, _ node: WorkingNode) {
        router.post("pull") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(PullRequest.self)
            // Check before the stream starts, so a bad token is a plain 401.
            let (source, jobID) = try await node.pullSource(body, caller: context.caller)
            let docker = try node.engine()
            return StreamReply.make(request, logger: node.logger, caller: context.caller) { sink throws(BDockerError) in
                try await docker.pull(source) { line throws(BDockerError) in
                    try await sink.send(.progress, ByteBuffer(bytes: PullLine(id: line.id, status: line.status, progress: line.progress).json))
                }
                try await node.recordPulled(source, jobID: jobID)
                return source
            }
        }
        router.put("run") { request, context -> Response in
            // -i and -t: the body is frames carrying stdin and terminal sizes (AttachedRun).
            if request.headers[.contentType] == StreamFrames.contentType {
                return try await AttachedRun.framed(request, context, node)
            }
            var request = request
            let body = try await request.decodeJSON(RunRequest.self)
            if body.interactive && !body.detach {
                throw BDockerError.invalidInput("an attached interactive run sends its stdin as frames: Content-Type \(StreamFrames.contentType)")
            }
            let prepared = try await node.createContainer(body, caller: context.caller)
            let docker = try node.engine()
            if body.detach {
                try await docker.start(prepared.id)
                return JSONReply.make(prepared.id, status: .created)
            }
            if body.tty {
                return try AttachedRun.reply(request, context, node, body, id: prepared.id, input: nil)
            }
            // Attach before start so not a byte of output is missed.
            let output = try await docker.attach(prepared.id)
            try await docker.start(prepared.id)
            return StreamReply.make(request, logger: node.logger, caller: context.caller) { sink throws(BDockerError) in
                try await sink.send(.container, ByteBuffer(string: prepared.id))
                try await output.stream { frame throws(BDockerError) in try await sink.send(frame) }
                let exitCode = try await docker.wait(prepared.id)
                if body.autoRemove { await node.removeAfterRun(prepared.id) }
                return RunResult(id: prepared.id, exitCode: exitCode)
            }
        }
        router.get("ps") { request, context -> Response in
            let all = ["1", "true", "yes"].contains(request.query("all") ?? "")
            return JSONReply.make(try await node.ps(token: request.query("token"), all: all, caller: context.caller))
        }
        router.get("inspect") { request, context -> Response in
            JSONReply.make(try await node.inspect(token: request.query("token"), container: request.query("container_id"),
                                                  caller: context.caller))
        }
        router.get("logs") { request, context -> Response in
            let token = request.query("token"), container = request.query("container_id")
            // Resolve ownership first: an unknown or foreign id is a plain 404.
            let id = try await node.ownedContainer(token, container ?? "", caller: context.caller).id
            let options = try LogOptions.fromQuery(follow: request.query("follow"), tail: request.query("tail"),
                                         timestamps: request.query("timestamps"))
            let docker = try node.engine()
            return StreamReply.make(request, logger: node.logger, caller: context.caller) { sink throws(BDockerError) in
                try await docker.logs(id, options) { frame throws(BDockerError) in try await sink.send(frame) }
                return "ok"
            }
        }
        router.put("rm") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.remove(try await request.decodeJSON(RemoveRequest.self), caller: context.caller))
        }
        router.put("stop") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.stop(try await request.decodeJSON(ContainerRequest.self), caller: context.caller))
        }
        router.put("start") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.start(try await request.decodeJSON(ContainerRequest.self), caller: context.caller))
        }
        router.put("exec") { request, context -> Response in
            var request = request
            let body = try await request.decodeJSON(ExecRequest.self)
            let (execID, output) = try await node.exec(body, caller: context.caller)
            let docker = try node.engine()
            return StreamReply.make(request, logger: node.logger, caller: context.caller) { sink throws(BDockerError) in
                try await output.stream { frame throws(BDockerError) in try await sink.send(frame) }
                return RunResult(id: execID, exitCode: try await docker.execExitCode(execID))
            }
        }
        router.get("images") { request, context -> Response in
            JSONReply.make(try await node.images(token: request.query("token"), caller: context.caller))
        }
        router.put("rmi") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.removeImages(try await request.decodeJSON(RemoveImageRequest.self), caller: context.caller))
        }
        router.put("kill") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.kill(try await request.decodeJSON(KillRequest.self), caller: context.caller))
        }
        router.get("wait") { request, context -> Response in
            // Resolve ownership first; then the reply streams (nothing) until the container stops.
            let id = try await node.ownedContainer(request.query("token"), request.query("container_id") ?? "", caller: context.caller).id
            let docker = try node.engine()
            return StreamReply.make(request, logger: node.logger, caller: context.caller) { _ throws(BDockerError) in
                RunResult(id: id, exitCode: try await docker.wait(id))
            }
        }
        router.get("info") { request, context -> Response in
            JSONReply.make(try await node.info(token: request.query("token"), caller: context.caller))
        }
        router.put("copy") { request, context -> Response in
            var request = request
            return JSONReply.make(try await node.copy(try await request.decodeJSON(CopyRequest.self), caller: context.caller))
        }
    }

    /// What both roles serve: the error envelope, `GET /status`, and for monitoring
    /// `GET /health`, `GET /ready` and `GET /metrics` (see `HealthEndpoints`).
    static func base(logger: Logger, database: BDockerDatabase, role: String, health: HealthEndpoints) -> Router<BDContext> {
        let router = Router(context: BDContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(logger: logger))
        router.get("status") { _, _ -> Response in
            JSONReply.make(StatusResult(role: role, version: BDockerVersion.current, database: database.path,
                                        migrations: database.appliedMigrations))
        }
        health.add(to: router, role: role)
        return router
    }
}
