import BDBatch
import BDConfig
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
    /// The engine refuses a memory limit below 6 MiB; a job limited below that still gets it
    /// (the monitor enforces the job's own limit on the whole tree).
    static let minimumMemoryBytes: Int64 = 6 << 20

    public func engine() throws(BDockerError) -> DockerEngine {
        guard let docker else { throw .unavailable("this daemon has no Docker engine configured ([dockerAPI] base_url)") }
        return docker
    }

    public func pull(_ request: PullRequest, caller: Caller, progress: @Sendable (PullProgress) async throws(BDockerError) -> Void) async throws(BDockerError) -> String {
        let (source, jobID) = try await pullSource(request, caller: caller)
        try await engine().pull(source, progress: progress)
        try await recordPulled(source, jobID: jobID)
        return source
    }

    /// Notes that the job pulled `reference`, for `images` and `rmi`.
    public func recordPulled(_ reference: String, jobID: Int64) async throws(BDockerError) {
        try await BDockerError.wrapping("recording the pulled image failed") {
            try await database.pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO job_images (job_id, reference, pulled_at) VALUES (?, ?, ?)",
                               arguments: [jobID, reference, Date().timeIntervalSince1970])
            }
        }
    }

    /// The images the job pulled, as the engine has them now.
    public func images(token: String?, caller: Caller) async throws(BDockerError) -> [ImageRow] {
        let session = try await tokens.requireUserToken(token, caller: caller)
        let jobID = session.jobID
        let references = try await BDockerError.wrapping("listing the job's images failed") {
            try await database.pool.read { db in
                try String.fetchAll(db, sql: "SELECT reference FROM job_images WHERE job_id = ? ORDER BY pulled_at", arguments: [jobID])
            }
        }
        let docker = try engine()
        var rows: [ImageRow] = []
        for reference in references {
            let summary = try await docker.imageSummary(reference)
            rows.append(ImageRow(reference: reference, id: summary?.id ?? "", created: summary?.created ?? "", size: summary?.size ?? 0))
        }
        return rows
    }

    /// Removes images the job pulled (only those, and none another live job also pulled).
    public func removeImages(_ request: RemoveImageRequest, caller: Caller) async throws(BDockerError) -> [RemoveResult] {
        let session = try await tokens.requireUserToken(request.token, caller: caller)
        guard !request.images.isEmpty else { throw .invalidInput("name at least one image") }
        let jobID = session.jobID
        let docker = try engine()
        var results: [RemoveResult] = []
        for reference in request.images {
            do throws(BDockerError) {
                let (mine, shared) = try await BDockerError.wrapping("reading the job's images failed") {
                    try await database.pool.read { db in
                        let mine = try Bool.fetchOne(db, sql: "SELECT 1 FROM job_images WHERE job_id = ? AND reference = ?",
                                                     arguments: [jobID, reference]) ?? false
                        let shared = try Int.fetchOne(db, sql: """
                            SELECT count(*) FROM job_images i JOIN jobs j ON j.id = i.job_id
                            WHERE i.reference = ? AND i.job_id <> ? AND j.state <> 'cleaned'
                            """, arguments: [reference, jobID]) ?? 0
                        return (mine, shared)
                    }
                }
                guard mine else { throw BDockerError.notFound("no such image pulled by this job: \(reference)") }
                guard shared == 0 else { throw BDockerError.conflict("image \(reference) is in use by another job on this node") }
                do {
                    try await docker.removeImage(reference, force: request.force)
                } catch .notFound {
                    // Already gone from the engine: forgetting it is all that is left.
                }
                try await BDockerError.wrapping("forgetting the removed image failed") {
                    try await database.pool.write { db in
                        try db.execute(sql: "DELETE FROM job_images WHERE job_id = ? AND reference = ?", arguments: [jobID, reference])
                    }
                }
                audit(session, "rmi \(reference)")
                results.append(RemoveResult(container: reference, removed: true, error: nil))
            } catch {
                results.append(RemoveResult(container: reference, removed: false, error: error.message))
            }
        }
        return results
    }

    /// The image a pull request names, once its token is checked: what must hold before any
    /// progress streams.
    public func pullSource(_ request: PullRequest, caller: Caller) async throws(BDockerError) -> (source: String, jobID: Int64) {
        let session = try await tokens.requireUserToken(request.token, caller: caller)
        let source = request.source.trimmingCharacters(in: .whitespaces)
        guard !source.isEmpty else { throw .invalidInput("an image name is required, e.g. busybox:latest") }
        audit(session, "pull \(source)")
        return (source, session.jobID)
    }

    /// One INFO line per user action, naming the batch job and its user, so an admin can
    /// trace who did what on the node (failures are logged with the caller's uid by the HTTP
    /// layer).
    func audit(_ session: UserSession, _ action: String) {
        logger.info("job \(session.jobKey) (\(session.user)): \(action)")
    }

    /// What `run` needs before any output flows: the container, created and recorded.
    public struct PreparedRun: Sendable {
        public var id: String
        public var session: UserSession
    }

    /// Creates the container with the job's identity and limits, and records it for the job
    /// before it can start, so clean finds it even if the daemon dies right after. Binds are
    /// pinned first (`BindStager`); the engine only sees their staging paths.
    public func createContainer(_ request: RunRequest, caller: Caller) async throws(BDockerError) -> PreparedRun {
        let session = try await tokens.requireUserToken(request.token, caller: caller)
        let image = request.imageID.trimmingCharacters(in: .whitespaces)
        guard !image.isEmpty else { throw .invalidInput("an image is required") }
        if let dir = request.workingDir, !dir.hasPrefix("/") {
            throw .invalidInput("the working directory '\(dir)' must be an absolute path inside the container")
        }
        let volumes = try request.volumes.map { v throws(BDockerError) in try BindStager.Volume(parsing: v) }
        try RunOptions.validate(env: request.env, name: request.name)
        var live = try await liveContainerIDs(jobID: session.jobID).count
        if live >= limits.maxContainersPerJob {
            // Containers run with --rm -d leave on their own: count what the engine still has.
            live = try await forgetContainersGoneFromEngine(session)
        }
        guard live < limits.maxContainersPerJob else {
            throw .conflict("job \(session.jobKey) already has \(live) containers, the most a job may have "
                + "([batch] max_containers_per_job); remove some with bdocker rm")
        }
        let job = try await jobRecord(session)
        // Opening the user's path and mounting are system calls that can wait (NFS HOMEs): on
        // the batch module's threads, as are release and sweep below.
        let binds = self.binds
        let values = BindRoot.Values(user: session.user, uid: session.uid, jobID: job.batchJobID, taskID: job.taskID, queue: job.queue)
        let staged = try await BlockingWork.run { () throws(BDockerError) in try binds.stage(volumes, for: session, job: values) }
        let spec = ContainerSpec(
            image: image, cmd: request.script, name: request.name, workingDir: request.workingDir,
            user: "\(session.uid):\(session.gid)", env: request.env, binds: staged?.binds ?? [],
            labels: [Self.jobLabel: session.jobKey, Self.userLabel: session.user],
            cgroupParent: batch.flatMap { $0.controller.cgroupParent(of: job) },
            // No setuid escalation and no capabilities: uid 0 inside could otherwise chown or
            // setuid files in the bound HOME.
            securityOpt: ["no-new-privileges"], capDrop: ["ALL"],
            // A fork bomb stops at the pids limit, and memory at the job's own limit, without
            // waiting for the monitor's next tick.
            pidsLimit: limits.pidsLimit, memoryBytes: job.maxMemBytes.map { max($0, Self.minimumMemoryBytes) },
            entrypoint: request.entrypoint.map { [$0] },
            // Attached runs are removed by the daemon after their exit code is read (the
            // engine's own removal would race that read); detached ones by the engine.
            autoRemove: request.autoRemove && request.detach,
            // Attached, stdin closes when the client's does (EOF reaches the container);
            // detached (`-d -i`), it stays open as docker keeps it.
            tty: request.tty, openStdin: request.interactive, stdinOnce: request.interactive && !request.detach)
        let docker: DockerEngine
        let id: String
        do {
            docker = try engine()
            id = try await createPullingIfMissing(spec, docker: docker, session: session)
        } catch {
            if let staged { await releaseStages([staged.stage]) }
            throw error
        }
        do {
            try await BDockerError.wrapping("recording container \(id) failed") {
                try await database.pool.write { db in
                    try ContainerRecord(id: id, jobID: session.jobID, image: image, bindStage: staged?.stage).insert(db)
                    emptyJobs.containerAdded(to: session.jobID, db)
                }
            }
        } catch {
            // Best effort: the container was never recorded, so nothing else will remove it.
            try? await docker.remove(id, force: true)
            if let staged { await releaseStages([staged.stage]) }
            throw error
        }
        audit(session, "run \(image) \(request.script.joined(separator: " ")) as container \(id.prefix(12))")
        return PreparedRun(id: id, session: session)
    }

    /// Creates the container; an image the node does not have is pulled first, as `docker run`
    /// does by default.
    func createPullingIfMissing(_ spec: ContainerSpec, docker: DockerEngine, session: UserSession) async throws(BDockerError) -> String {
        do {
            return try await docker.createContainer(spec)
        } catch .notFound(let message) where message.lowercased().contains("no such image") {
            audit(session, "pull \(spec.image) (not on the node, for run)")
            try await docker.pull(spec.image) { _ throws(BDockerError) in }
            try await recordPulled(spec.image, jobID: session.jobID)
            return try await docker.createContainer(spec)
        }
    }

    /// The job's row, as the token's session names it.
    func jobRecord(_ session: UserSession) async throws(BDockerError) -> JobRecord {
        let jobID = session.jobID
        let job = try await BDockerError.wrapping("reading job \(session.jobKey) failed") {
            try await database.pool.read { db in try JobRecord.fetchOne(db, key: jobID) }
        }
        guard let job else { throw .internalFault("job \(session.jobKey) vanished from the database") }
        return job
    }

    public func start(_ request: ContainerRequest, caller: Caller) async throws(BDockerError) -> String {
        let (id, session) = try await ownedContainer(request.token, request.containerID, caller: caller)
        try await engine().start(id)
        audit(session, "start \(id.prefix(12))")
        return id
    }

    public func stop(_ request: ContainerRequest, caller: Caller) async throws(BDockerError) -> String {
        let (id, session) = try await ownedContainer(request.token, request.containerID, caller: caller)
        let grace = request.timeoutSeconds ?? 10
        guard (0...3600).contains(grace) else { throw .invalidInput("the stop timeout must be 0 to 3600 seconds, not \(grace)") }
        try await engine().stop(id, timeoutSeconds: grace)
        audit(session, "stop \(id.prefix(12))")
        return id
    }

    /// Starts an exec in one of the job's running containers, as the job's user (never root,
    /// whatever the request says), and returns it with its output to stream.
    public func exec(_ request: ExecRequest, caller: Caller) async throws(BDockerError) -> (execID: String, output: AttachedOutput) {
        guard !request.script.isEmpty else { throw .invalidInput("exec needs a command") }
        if let dir = request.workingDir, !dir.hasPrefix("/") {
            throw .invalidInput("the working directory '\(dir)' must be an absolute path inside the container")
        }
        try RunOptions.validate(env: request.env, name: nil)
        let (id, session) = try await ownedContainer(request.token, request.containerID, caller: caller)
        let started = try await engine().exec(id, cmd: request.script, user: "\(session.uid):\(session.gid)",
                                              env: request.env, workingDir: request.workingDir)
        audit(session, "exec \(request.script.joined(separator: " ")) in \(id.prefix(12))")
        return started
    }

    public func kill(_ request: KillRequest, caller: Caller) async throws(BDockerError) -> String {
        let signal = try KillRequest.normalized(request.signal)
        let (id, session) = try await ownedContainer(request.token, request.containerID, caller: caller)
        try await engine().kill(id, signal: signal)
        audit(session, "kill -s \(signal) \(id.prefix(12))")
        return id
    }

    public func inspect(token: String?, container: String?, caller: Caller) async throws(BDockerError) -> JSONValue {
        let id = try await ownedContainer(token, container ?? "", caller: caller).id
        return try await engine().inspect(id)
    }

    /// Removes each named container, reporting per id; an unknown or foreign id fails alone.
    public func remove(_ request: RemoveRequest, caller: Caller) async throws(BDockerError) -> [RemoveResult] {
        let session = try await tokens.requireUserToken(request.token, caller: caller)
        guard !request.containerID.isEmpty else { throw .invalidInput("name at least one container") }
        let docker = try engine()
        var results: [RemoveResult] = []
        for reference in request.containerID {
            do {
                let id = try await resolveOwned(reference, session: session)
                try await docker.remove(id, force: request.force)
                try await markRemoved([id])
                audit(session, "rm \(id.prefix(12))")
                results.append(RemoveResult(container: reference, removed: true, error: nil))
            } catch {
                audit(session, "rm \(reference) failed: \(error.message)")
                results.append(RemoveResult(container: reference, removed: false, error: error.message))
            }
        }
        return results
    }

    public func ps(token: String?, all: Bool, caller: Caller) async throws(BDockerError) -> [ContainerRow] {
        let session = try await tokens.requireUserToken(token, caller: caller)
        // The store knows the job's containers: none means nothing to ask the engine about.
        if emptyJobs.contains(session.jobID) { return [] }
        let generation = emptyJobs.generation
        let owned = Set(try await ownedContainers(session))
        if owned.isEmpty {
            emptyJobs.insert(session.jobID, ifStill: generation)
            return []
        }
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

    public func info(token: String?, caller: Caller) async throws(BDockerError) -> JobSummary {
        let session = try await tokens.requireUserToken(token, caller: caller)
        let job = try await jobRecord(session)
        let jobID = session.jobID
        let samples = try await BDockerError.wrapping("reading the job's samples failed") {
            try await database.pool.read { db in try SampleRecord.filter(SampleRecord.Columns.jobID == jobID).fetchAll(db) }
        }
        let used = JobUsage.compute(samples: samples, onlyDocker: batch?.settings.onlyDockerAccounting ?? true)
        let owned = Set(try await ownedContainers(session))
        let docker = try engine()
        let running = owned.isEmpty ? 0 : try await docker.list(all: false, labelFilter: [Self.jobLabel: session.jobKey])
            .filter { owned.contains($0.id) }.count
        let version = try await docker.version()
        let engineInfo = try await docker.info()
        return JobSummary(
            job: session.jobKey, user: session.user, uid: session.uid, home: session.home, queue: job.queue, host: job.host,
            limits: .init(cpuSeconds: job.maxCPUSeconds, memoryBytes: job.maxMemBytes, maxContainers: limits.maxContainersPerJob,
                          pidsPerContainer: limits.pidsLimit),
            usage: .init(cpuSeconds: used.cpu, memGBSeconds: used.mem, maxMemoryBytes: used.maxvmem, samples: samples.count,
                         lastSampleAt: samples.map(\.takenAt).max()),
            containers: owned.count, running: running,
            engine: .init(version: version.version, apiVersion: version.apiVersion,
                          operatingSystem: engineInfo["OperatingSystem"]?.string, kernel: engineInfo["KernelVersion"]?.string,
                          storageDriver: engineInfo["Driver"]?.string))
    }

    /// The node's monitor; a quota kill stops the job's containers through this node's engine.
    public func monitor(interval: Duration) -> JobMonitor? {
        guard let batch else { return nil }
        return JobMonitor(pool: database.pool, controller: batch.controller, interval: interval, logger: logger, metrics: metrics) { jobID in
            await stopAllContainers(jobID: jobID)
        }
    }

    /// Stops (without removing) every running container of a job: a killed job's containers
    /// stay for clean to account and remove.
    func stopAllContainers(jobID: Int64) async {
        guard let docker else { return }
        let ids: [String]
        do {
            ids = try await liveContainerIDs(jobID: jobID)
        } catch {
            logger.error("job \(jobID): cannot stop its containers: \(error)")
            return
        }
        for id in ids {
            do {
                try await docker.stop(id, timeoutSeconds: 0)
            } catch .notFound {
                // Already gone: nothing to stop.
            } catch {
                logger.warning("job \(jobID): stopping container \(id) failed: \(error)")
            }
        }
    }

    /// Removes every container of a job (clean); returns how many went: those recorded for the
    /// job, and those the engine holds under the job's labels that were never recorded. The
    /// engine finishes a create even when the daemon that asked for it is killed meanwhile, so
    /// a daemon killed during `createContainer` leaves a container only the labels name. Job
    /// keys are unique among configured jobs and an earlier job with the same key was cleaned,
    /// so a container labelled with this key and user now is this job's, or that job's leftover.
    func removeAllContainers(jobID: Int64, jobKey: String, user: String) async throws(BDockerError) -> Int {
        let ids = try await liveContainerIDs(jobID: jobID)
        var unrecorded: [String] = []
        if let docker {
            do {
                let recorded = Set(ids)
                unrecorded = try await docker.list(all: true, labelFilter: [Self.jobLabel: jobKey, Self.userLabel: user])
                    .map(\.id).filter { !recorded.contains($0) }
            } catch {
                // Best effort: the recorded containers still go; the engine's own error follows if it is down.
                logger.warning("job \(jobKey): cannot list the engine's containers labelled with the job: \(error.message)")
            }
        }
        guard !ids.isEmpty || !unrecorded.isEmpty else { return 0 }
        let docker = try engine()
        for id in ids + unrecorded {
            do {
                try await docker.remove(id, force: true)
            } catch .notFound {
                // Already gone (removed by hand or by the engine): nothing to do.
            }
        }
        if !unrecorded.isEmpty {
            logger.warning("job \(jobKey): removed \(unrecorded.count) container(s) never recorded (a create interrupted by a restart)")
        }
        try await markRemoved(ids)
        return ids.count + unrecorded.count
    }

    // MARK: ownership

    func ownedContainers(_ session: UserSession) async throws(BDockerError) -> [String] {
        try await liveContainerIDs(jobID: session.jobID)
    }

    /// The job's containers not yet removed, as recorded in SQLite (the source of truth).
    /// Never a synchronous read here: GRDB's async reads release their connection only once
    /// resumed on the cooperative pool, so threads of that pool blocked in sync reads can wait
    /// for each other forever (seen with 2 cores and parallel tests).
    func liveContainerIDs(jobID: Int64) async throws(BDockerError) -> [String] {
        try await BDockerError.wrapping("listing the job's containers failed") {
            try await database.pool.read { db in try ContainerRecord.liveIDs(jobID: jobID, db) }
        }
    }

    public func ownedContainer(_ token: String?, _ reference: String, caller: Caller) async throws(BDockerError) -> (id: String, session: UserSession) {
        let session = try await tokens.requireUserToken(token, caller: caller)
        return (try await resolveOwned(reference, session: session), session)
    }

    /// The one container of the session's job that `reference` names: an id, a unique id
    /// prefix, or a name. Names live in the engine, so they are asked for only when the
    /// reference is not an id the store knows.
    func resolveOwned(_ reference: String, session: UserSession) async throws(BDockerError) -> String {
        let owned = try await ownedContainers(session)
        do {
            return try AccessPolicy.resolveContainer(reference, owned: owned.map { ($0, []) })
        } catch .notFound {
            let ids = Set(owned)
            let named = try await engine().list(all: true, labelFilter: [Self.jobLabel: session.jobKey])
                .filter { ids.contains($0.id) }.map { (id: $0.id, names: $0.names) }
            return try AccessPolicy.resolveContainer(reference, owned: named)
        }
    }

    /// Marks removed the job's containers the engine no longer has (an `--rm -d` container
    /// that exited, one removed by hand) and returns how many are left.
    func forgetContainersGoneFromEngine(_ session: UserSession) async throws(BDockerError) -> Int {
        let owned = try await ownedContainers(session)
        let present = Set(try await engine().list(all: true, labelFilter: [Self.jobLabel: session.jobKey]).map(\.id))
        let gone = owned.filter { !present.contains($0) }
        if !gone.isEmpty { try await markRemoved(gone) }
        return owned.count - gone.count
    }

    /// Removes a `--rm` container after its attached run ended.
    public func removeAfterRun(_ id: String) async {
        do {
            try await engine().remove(id, force: true)
            try await markRemoved([id])
        } catch {
            logger.warning("container \(id.prefix(12)) run with --rm: removing it failed (the job's clean removes it): \(error.message)")
        }
    }

    /// Records the containers as removed and unmounts their pinned binds.
    func markRemoved(_ ids: [String]) async throws(BDockerError) {
        let stages = try await BDockerError.wrapping("recording removed containers failed") {
            try await database.pool.write { db in
                let mine = ContainerRecord.filter(keys: ids)
                let stages = try mine.select(ContainerRecord.Columns.bindStage, as: String?.self).fetchAll(db).compactMap { $0 }
                try mine.updateAll(db, ContainerRecord.Columns.removedAt.set(to: Date().timeIntervalSince1970))
                return stages
            }
        }
        await releaseStages(stages)
    }

    /// Unmounts and removes bind stages, off the cooperative pool.
    func releaseStages(_ stages: [String]) async {
        guard !stages.isEmpty else { return }
        let binds = self.binds
        _ = try? await BlockingWork.run { () throws(BDockerError) in for stage in stages { binds.release(stage: stage) } }
    }

    /// At start: unmounts every bind stage no live container holds (a crash must not leave
    /// mounts behind). Returns how many went.
    @discardableResult
    public func sweepBindStages() async throws(BDockerError) -> Int {
        let keep = try await BDockerError.wrapping("listing bind stages failed") {
            try await database.pool.read { db in
                try ContainerRecord.all().notRemoved().filter(ContainerRecord.Columns.bindStage != nil)
                    .select(ContainerRecord.Columns.bindStage, as: String.self).fetchAll(db)
            }
        }
        let binds = self.binds
        return try await BlockingWork.run { () throws(BDockerError) in binds.sweep(keeping: Set(keep)) }
    }
}

/// Jobs whose store rows say they have no live container, so `ps` need not read the store. A
/// job leaves the set when a container is recorded for it: in the recording transaction and
/// again once it commits, and a lookup that began before that cannot put the job back (the
/// generation moved on). Removals only make "no container" truer, so they need nothing.
final class EmptyJobs: @unchecked Sendable {
    static let perPool = PerPool { EmptyJobs() }
    private let lock = NSLock()
    private var jobs: Set<Int64> = []
    private var additions: UInt64 = 0
    static let capacity = 100_000

    func contains(_ jobID: Int64) -> Bool { lock.withLock { jobs.contains(jobID) } }

    var generation: UInt64 { lock.withLock { additions } }

    func insert(_ jobID: Int64, ifStill generation: UInt64) {
        lock.withLock {
            guard additions == generation else { return }
            if jobs.count >= Self.capacity { jobs.removeAll(keepingCapacity: true) }
            jobs.insert(jobID)
        }
    }

    /// Inside the transaction that records a container of the job.
    func containerAdded(to jobID: Int64, _ db: Database) {
        forget(jobID)
        db.afterNextTransaction(onCommit: { [self] _ in forget(jobID) }, onRollback: { _ in })
    }

    func forget(_ jobID: Int64) {
        lock.withLock {
            additions &+= 1
            jobs.remove(jobID)
        }
    }
}
