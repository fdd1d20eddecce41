import BDBatch
import BDConfig
import BDCore
import BDCredentials
import BDDocker
import BDMetrics
import BDStore
import Foundation
import GRDB
import Logging

/// What one job's containers may use, besides the job's own memory limit.
public struct ContainerLimits: Sendable {
    /// Processes per container (the engine's PidsLimit): a fork bomb stops here.
    public var pidsLimit: Int
    /// Containers a job may have at once, running or stopped.
    public var maxContainersPerJob: Int

    public init(pidsLimit: Int = 1024, maxContainersPerJob: Int = 64) {
        self.pidsLimit = pidsLimit
        self.maxContainersPerJob = maxContainersPerJob
    }
}

/// The working-node daemon's behaviour, independent of HTTP: what configure and clean do.
public struct WorkingNode: Sendable {
    public let database: BDockerDatabase
    public let tokens: any TokenController
    public let logger: Logger
    /// The engine containers run on; nil only in tests of configure/clean alone.
    public let docker: DockerEngine?
    /// The batch system's controller and the `[batch]` settings; nil only in tests of the
    /// token flow alone.
    public let batch: (controller: any WNController, settings: Settings.Batch)?
    /// Delivers accounting records; nil only in tests of the token flow alone.
    public let outbox: OutboxSender?
    /// Where pinned bind sources are mounted for the engine.
    public let binds: BindStager
    /// What the node counts (`GET /metrics`).
    public let metrics: NodeMetrics
    public let limits: ContainerLimits
    public let copyLimits: CopyLimits
    /// Looks users up; replaceable so unit tests can describe users that do not exist here.
    let passwd: @Sendable (String) -> PasswdEntry?
    /// Jobs known to have no live container: `ps` of such a job answers from memory. Shared by
    /// every node object on the same database.
    let emptyJobs: EmptyJobs

    public init(database: BDockerDatabase, tokens: any TokenController, docker: DockerEngine?,
                batch: (controller: any WNController, settings: Settings.Batch)? = nil, outbox: OutboxSender? = nil,
                binds: BindStager = BindStager(root: Settings.Server.defaultBindStaging),
                limits: ContainerLimits = ContainerLimits(), copyLimits: CopyLimits = CopyLimits(),
                metrics: NodeMetrics = NodeMetrics(), logger: Logger,
                passwd: @escaping @Sendable (String) -> PasswdEntry? = { PasswdEntry.lookup(name: $0) }) {
        self.database = database
        self.tokens = tokens
        self.docker = docker
        self.batch = batch
        self.outbox = outbox
        self.binds = binds
        self.limits = limits
        self.copyLimits = copyLimits
        self.metrics = metrics
        self.logger = logger
        self.passwd = passwd
        self.emptyJobs = EmptyJobs.perPool.value(for: database.pool)
    }

    /// Prepares the job's environment (batch controller: limits, cgroup tree), then creates the
    /// job row, its first sample and its user token in one transaction; returns the token.
    public func configure(_ request: ConfigureRequest, caller: Caller) async throws(BDockerError) -> (token: String, job: JobRecord) {
        try await metrics.counted(metrics.configureSeconds, metrics.configured) { () throws(BDockerError) in
            try await configureJob(request, caller: caller)
        }
    }

    private func configureJob(_ request: ConfigureRequest, caller: Caller) async throws(BDockerError) -> (token: String, job: JobRecord) {
        try AccessPolicy.requireRoot(caller, for: "configure")
        // The passwd lookup may go to LDAP or NIS (NSS): off the cooperative pool.
        let node = self, credentials = request.userCredentials
        var job = try await BlockingWork.run { () throws(BDockerError) in try node.validatedJob(credentials) }
        // Refuse a live duplicate before touching its cgroups.
        let key = job.jobKey
        let duplicate = try await BDockerError.wrapping("checking whether job \(key) is configured") {
            try await database.pool.read { db in try JobRecord.live(key: key).isEmpty(db) == false }
        }
        if duplicate {
            throw .conflict("job \(key) is already configured on this node; clean it first")
        }
        if let batch { try await batch.controller.configureEnvironment(&job) }
        let first = batch?.controller.sample(job)
        let prepared = job
        do {
            return try await insertConfigured(prepared, firstSample: first)
        } catch {
            // Undo the environment; the configure's own error is what the caller needs to know.
            do {
                if let batch { try await batch.controller.cleanEnvironment(prepared) }
            } catch let undo {
                logger.error("job \(prepared.jobKey): undoing its environment after a failed configure failed: \(undo)")
            }
            throw error
        }
    }

    /// The job row, its first sample and its user token, in one transaction.
    private func insertConfigured(_ job: JobRecord, firstSample: CgroupReading?) async throws(BDockerError)
        -> (token: String, job: JobRecord) {
        try await BDockerError.wrapping("configure of job \(job.jobKey) failed") {
            try await database.pool.write { db in
                var row = job
                do {
                    try row.insert(db)
                } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                    throw BDockerError.conflict("job \(row.jobKey) is already configured on this node; clean it first")
                }
                if let firstSample { try Self.sampleRecord(row.id!, firstSample).insert(db) }
                let token = try tokens.issueToken(for: row, db: db)
                // A new job has no container: its first `ps` needs no read either.
                let jobID = row.id!, emptyJobs = self.emptyJobs, generation = emptyJobs.generation
                db.afterNextTransaction(onCommit: { _ in emptyJobs.insert(jobID, ifStill: generation) }, onRollback: { _ in })
                return (token, row)
            }
        }
    }

    /// clean_environment: removes the job's containers, takes a final sample, removes the
    /// cgroup tree, and in ONE transaction stores the accounting record in the outbox, marks
    /// the job cleaned and revokes the token: a crash can neither lose the record nor make it
    /// twice. If anything before that fails the job stays configured, so the epilog can retry.
    public func clean(_ request: CleanRequest, caller: Caller) async throws(BDockerError) -> (job: JobRecord, accounted: Bool) {
        try await metrics.counted(metrics.cleanSeconds, metrics.cleaned) { () throws(BDockerError) in
            try await cleanJob(request, caller: caller)
        }
    }

    private func cleanJob(_ request: CleanRequest, caller: Caller) async throws(BDockerError) -> (job: JobRecord, accounted: Bool) {
        try AccessPolicy.requireRoot(caller, for: "clean")
        let session = try await cleanTarget(request)
        let removed = try await removeAllContainers(jobID: session.jobID, jobKey: session.jobKey, user: session.user)
        if removed > 0 { logger.info("job \(session.jobKey): removed \(removed) container(s)") }
        let jobID = session.jobID
        let row = try await BDockerError.wrapping("reading job \(session.jobKey) failed") {
            try await database.pool.read { db in try JobRecord.fetchOne(db, key: jobID) }
        }
        guard var job = row else { throw .notFound("job \(session.jobKey) is not known on this node") }
        let last = batch?.controller.sample(job)
        let cpuTimes = batch?.controller.cpuTimes(job)
        if let batch { try await batch.controller.cleanEnvironment(job) }
        let end = Date().timeIntervalSince1970
        job.state = .cleaned
        job.cleanedAt = end
        let cleaned = job
        defer { outbox?.kick() }
        return try await BDockerError.wrapping("clean of job \(session.jobKey) failed") {
            try await database.pool.write { db in
                if let last { try Self.sampleRecord(jobID, last, at: end).insert(db) }
                var accounted = false
                if let batch, cleaned.cgroup != nil {
                    let samples = try SampleRecord.of(jobID: jobID).fetchAll(db)
                    let usage = JobUsage.compute(samples: samples, onlyDocker: batch.settings.onlyDockerAccounting)
                    let record = AccountingRecordBuilder.record(job: cleaned, usage: usage, cpuTimes: cpuTimes, end: end,
                                                                  settings: batch.settings)
                    var outbox = OutboxRecord(jobID: jobID, record: try AccountingRecordBuilder.json(record), line: record.line())
                    try outbox.insert(db)
                    accounted = true
                }
                try cleaned.update(db)
                // Every token of the job goes, whichever way the job was named.
                try tokens.revokeAll(forJob: jobID, db: db)
                emptyJobs.forget(jobID)
                return (cleaned, accounted)
            }
        }
    }

    /// Puts a process of the caller's job into its COMMON cgroup: for batch systems whose
    /// prolog has no process of the job (Slurm: the TaskProlog, as the job's user, names each
    /// task). The token must be the caller's; the controller checks the process.
    public func join(_ request: JoinRequest, caller: Caller) async throws(BDockerError) -> JobRecord {
        let session = try await tokens.requireUserToken(request.token, caller: caller)
        guard request.pid >= 2, request.pid <= Int(Int32.max) else {
            throw .invalidInput("'\(request.pid)' is not a process id")
        }
        let job = try await jobRecord(session)
        if let batch { try await batch.controller.join(job, pid: request.pid) }
        return job
    }

    /// The job a clean is about: the live job named (what the epilog sends), checked against
    /// the token when one comes too; or, from callers of the original API, the token's job.
    func cleanTarget(_ request: CleanRequest) async throws(BDockerError) -> UserSession {
        guard let job = request.job else {
            guard let token = request.token else { throw .invalidInput("clean needs the job (id, task_id)") }
            return try await tokens.authenticate(token)
        }
        let key = JobRecord.key(jobID: job.id, taskID: job.taskID == "undefined" ? nil : job.taskID)
        let row = try await BDockerError.wrapping("looking up job \(key) failed") {
            try await database.pool.read { db in try JobRecord.live(key: key).fetchOne(db) }
        }
        guard let row, let id = row.id else { throw .notFound("job \(key) is not configured on this node") }
        if let token = request.token {
            // A token planted in the job's token file must not redirect the clean to its job.
            let session: UserSession?
            do {
                session = try await tokens.authenticate(token)
            } catch .unauthorized, .forbidden {
                // A token that is not a live user token is not this job's either.
                session = nil
            }
            guard session?.jobID == id else {
                throw .forbidden("the token given is not job \(key)'s; refusing to clean")
            }
        }
        return UserSession(jobID: id, jobKey: row.jobKey, user: row.user, uid: row.uid, gid: row.gid, home: row.home)
    }

    static func sampleRecord(_ jobID: Int64, _ r: CgroupReading, at time: Double = Date().timeIntervalSince1970) -> SampleRecord {
        SampleRecord(jobID: jobID, takenAt: time, cpuNanosTree: r.cpuNanosTree, cpuNanosCommon: r.cpuNanosCommon,
                     memBytesTree: r.memBytesTree, memBytesCommon: r.memBytesCommon, maxMemBytesTree: r.maxMemBytesTree)
    }

    /// Checks what the prolog sent against the passwd database and the naming rules.
    func validatedJob(_ creds: UserCredentials) throws(BDockerError) -> JobRecord {
        guard !creds.user.isEmpty else { throw .invalidInput("user_credentials.user is empty") }
        guard let entry = passwd(creds.user) else {
            throw .invalidInput("user '\(creds.user)' is not in the passwd database of this node")
        }
        guard entry.uid == creds.uid, entry.gid == creds.gid else {
            throw .invalidInput("user '\(creds.user)' is uid \(entry.uid) gid \(entry.gid) here, not uid \(creds.uid) gid \(creds.gid)")
        }
        guard entry.home == creds.home else {
            throw .invalidInput("user '\(creds.user)' has HOME \(entry.home) here, not \(creds.home)")
        }
        guard entry.uid != 0 else {
            throw .forbidden("bdocker does not run jobs of root (uid 0)")
        }
        guard Self.isSafeName(creds.job.id) else {
            throw .invalidInput("job id '\(creds.job.id)' must be 1-64 letters, digits, '.', '_' or '-'")
        }
        var task = creds.job.taskID
        if task == "undefined" || task == "" { task = nil }
        if let task, !(task.allSatisfy(\.isNumber) && (1...9).contains(task.count)) {
            throw .invalidInput("task id '\(task)' must be a positive whole number")
        }
        if let spool = creds.job.spool, !spool.hasPrefix("/") {
            throw .invalidInput("job spool directory '\(spool)' must be an absolute path")
        }
        return JobRecord(batchJobID: creds.job.id, taskID: task, user: entry.name, uid: entry.uid, gid: entry.gid,
                         home: entry.home, spoolDir: creds.job.spool)
    }

    /// Job ids end up in cgroup and file names: keep them to a safe alphabet.
    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
    }
}
