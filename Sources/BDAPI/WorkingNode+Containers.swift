import BDBatch
import BDCore
import BDCredentials
import BDDocker
import BDStore
import Foundation
import GRDB
import NIOCore

/// The user commands: every one authenticates the token, and every container it names must be
/// one this token's job started (`AccessPolicy.resolveContainer` over the job's rows).
extension WorkingNode {
    /// Labels that mark a container as bdocker's and name its job.
    static let jobLabel = "bdocker.job"
    static let userLabel = "bdocker.user"

    func engine() throws(BDockerError) -> DockerEngine {
        guard let docker else { throw .unavailable("this daemon has no Docker engine configured ([dockerAPI] base_url)") }
        return docker
    }

    public func pull(_ request: PullRequest, progress: @Sendable (PullProgress) async throws(BDockerError) -> Void) async throws(BDockerError) -> String {
        let source = try await pullSource(request)
        try await engine().pull(source, progress: progress)
        return source
    }

    /// The image a pull request names, once its token is checked: what must hold before any
    /// progress streams.
    func pullSource(_ request: PullRequest) async throws(BDockerError) -> String {
        _ = try await tokens.requireUserToken(request.token)
        let source = request.source.trimmingCharacters(in: .whitespaces)
        guard !source.isEmpty else { throw .invalidInput("an image name is required, e.g. busybox:latest") }
        return source
    }

    /// What `run` needs before any output flows: the container, created and recorded.
    public struct PreparedRun: Sendable {
        public var id: String
        public var session: UserSession
    }

    /// Creates the container with the job's identity and limits, and records it for the job
    /// before it can start, so clean finds it even if the daemon dies right after.
    public func createContainer(_ request: RunRequest) async throws(BDockerError) -> PreparedRun {
        let session = try await tokens.requireUserToken(request.token)
        let image = request.imageID.trimmingCharacters(in: .whitespaces)
        guard !image.isEmpty else { throw .invalidInput("an image is required") }
        if let dir = request.workingDir, !dir.hasPrefix("/") {
            throw .invalidInput("the working directory '\(dir)' must be an absolute path inside the container")
        }
        let binds = try request.volumes.map { v throws(BDockerError) in try Self.bind(v, home: session.home) }
        let spec = ContainerSpec(
            image: image, cmd: request.script, workingDir: request.workingDir,
            user: "\(session.uid):\(session.gid)", binds: binds,
            labels: [Self.jobLabel: session.jobKey, Self.userLabel: session.user],
            cgroupParent: try await cgroupParent(session),
            // No setuid escalation and no capabilities: uid 0 inside could otherwise chown or
            // setuid files in the bound HOME.
            securityOpt: ["no-new-privileges"], capDrop: ["ALL"])
        let docker = try engine()
        let id = try await docker.createContainer(spec)
        do {
            try await database.pool.write { db in
                try ContainerRecord(id: id, jobID: session.jobID, image: image).insert(db)
            }
        } catch {
            try? await docker.remove(id, force: true)
            throw .internalFault("recording container \(id) failed: \(error)")
        }
        return PreparedRun(id: id, session: session)
    }

    /// The job's cgroup tree, so the containers' usage lands in it (nil: the engine's default).
    func cgroupParent(_ session: UserSession) async throws(BDockerError) -> String? {
        guard let batch else { return nil }
        let jobID = session.jobID
        guard let job = try? await database.pool.read({ db in try JobRecord.fetchOne(db, key: jobID) }) else {
            throw .internalFault("job \(session.jobKey) vanished from the database")
        }
        return batch.controller.cgroupParent(of: job)
    }

    /// Checks one `-v HOST:CONTAINER[:ro|:rw]` and returns it with HOST resolved. HOST must
    /// exist (the engine would create a missing one as root) and lie inside HOME.
    static func bind(_ volume: String, home: String) throws(BDockerError) -> String {
        let parts = volume.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .invalidInput("volume '\(volume)' must be HOST:CONTAINER or HOST:CONTAINER:ro")
        }
        let mode = parts.count == 3 ? parts[2] : nil
        if let mode, mode != "ro" && mode != "rw" {
            throw .invalidInput("volume '\(volume)': mode must be ro or rw, not '\(mode)'")
        }
        guard parts[1].hasPrefix("/") else {
            throw .invalidInput("volume '\(volume)': the container path must be absolute")
        }
        let host = try AccessPolicy.resolveInsideHome(parts[0], home: home)
        guard FileManager.default.fileExists(atPath: host) else {
            throw .notFound("volume '\(volume)': \(parts[0]) does not exist")
        }
        return ([host, parts[1]] + (mode.map { [$0] } ?? [])).joined(separator: ":")
    }

    public func start(_ request: ContainerRequest) async throws(BDockerError) -> String {
        let id = try await ownedContainer(request.token, request.containerID).id
        try await engine().start(id)
        return id
    }

    public func stop(_ request: ContainerRequest) async throws(BDockerError) -> String {
        let id = try await ownedContainer(request.token, request.containerID).id
        try await engine().stop(id)
        return id
    }

    public func inspect(token: String?, container: String?) async throws(BDockerError) -> JSONValue {
        let id = try await ownedContainer(token, container ?? "").id
        return try await engine().inspect(id)
    }

    /// Removes each named container, reporting per id; an unknown or foreign id fails alone.
    public func remove(_ request: RemoveRequest) async throws(BDockerError) -> [RemoveResult] {
        let session = try await tokens.requireUserToken(request.token)
        guard !request.containerID.isEmpty else { throw .invalidInput("name at least one container") }
        let owned = try await ownedContainers(session)
        let docker = try engine()
        var results: [RemoveResult] = []
        for reference in request.containerID {
            do {
                let id = try AccessPolicy.resolveContainer(reference, owned: owned.map { ($0, []) })
                try await docker.remove(id, force: request.force)
                try await markRemoved([id])
                results.append(RemoveResult(container: reference, removed: true, error: nil))
            } catch {
                results.append(RemoveResult(container: reference, removed: false, error: error.message))
            }
        }
        return results
    }

    public func ps(token: String?, all: Bool) async throws(BDockerError) -> [ContainerRow] {
        let session = try await tokens.requireUserToken(token)
        let owned = Set(try await ownedContainers(session))
        let rows = try await engine().list(all: all, labelFilter: [Self.jobLabel: session.jobKey])
        return rows.filter { owned.contains($0.id) }.map { c in
            ContainerRow(id: c.id, image: c.image, command: c.command, created: c.created, status: c.status,
                         ports: c.ports.map(Self.portText).joined(separator: ", "),
                         names: c.names.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }.joined(separator: ","))
        }
    }

    /// docker ps's rendering: "0.0.0.0:8080->80/tcp" or "80/tcp".
    static func portText(_ p: PortBinding) -> String {
        guard let published = p.publicPort else { return "\(p.privatePort)/\(p.type)" }
        return "\(p.ip ?? "0.0.0.0"):\(published)->\(p.privatePort)/\(p.type)"
    }

    public func info(token: String?) async throws(BDockerError) -> JSONValue {
        let session = try await tokens.requireUserToken(token)
        let engineInfo = try await engine().info()
        let count = try await ownedContainers(session).count
        return .object([
            "job": .string(session.jobKey), "user": .string(session.user), "home": .string(session.home),
            "containers": .int(Int64(count)), "docker": engineInfo,
        ])
    }

    /// The node's monitor; a quota kill stops the job's containers through this node's engine.
    public func monitor(interval: Duration) -> JobMonitor? {
        guard let batch else { return nil }
        return JobMonitor(pool: database.pool, controller: batch.controller, interval: interval, logger: logger) { jobID in
            await stopAllContainers(jobID: jobID)
        }
    }

    /// Stops (without removing) every running container of a job: a killed job's containers
    /// stay for clean to account and remove.
    func stopAllContainers(jobID: Int64) async {
        guard let docker, let ids = try? await liveContainerIDs(jobID: jobID) else { return }
        for id in ids { try? await docker.stop(id, timeoutSeconds: 0) }
    }

    /// Removes every container of a job (clean); returns how many went.
    func removeAllContainers(jobID: Int64) async throws(BDockerError) -> Int {
        let ids = try await liveContainerIDs(jobID: jobID)
        guard !ids.isEmpty else { return 0 }
        let docker = try engine()
        for id in ids {
            do {
                try await docker.remove(id, force: true)
            } catch .notFound {
                // Already gone (removed by hand or by the engine): nothing to do.
            }
        }
        try await markRemoved(ids)
        return ids.count
    }

    // MARK: ownership

    func ownedContainers(_ session: UserSession) async throws(BDockerError) -> [String] {
        try await liveContainerIDs(jobID: session.jobID)
    }

    /// The job's containers not yet removed, as recorded in SQLite (the source of truth).
    func liveContainerIDs(jobID: Int64) async throws(BDockerError) -> [String] {
        do {
            return try await database.pool.read { db in
                try String.fetchAll(db, sql: "SELECT id FROM containers WHERE job_id = ? AND removed_at IS NULL",
                                    arguments: [jobID])
            }
        } catch {
            throw .internalFault("listing the job's containers failed: \(error)")
        }
    }

    func ownedContainer(_ token: String?, _ reference: String) async throws(BDockerError) -> (id: String, session: UserSession) {
        let session = try await tokens.requireUserToken(token)
        let owned = try await ownedContainers(session)
        return (try AccessPolicy.resolveContainer(reference, owned: owned.map { ($0, []) }), session)
    }

    func markRemoved(_ ids: [String]) async throws(BDockerError) {
        do {
            try await database.pool.write { db in
                for id in ids {
                    try db.execute(sql: "UPDATE containers SET removed_at = ? WHERE id = ?",
                                   arguments: [Date().timeIntervalSince1970, id])
                }
            }
        } catch {
            throw .internalFault("recording removed containers failed: \(error)")
        }
    }
}
