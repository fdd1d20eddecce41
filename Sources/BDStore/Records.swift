import Foundation
import GRDB

/// A job configured on this working node (table `jobs`).
public struct JobRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "jobs"

    public enum State: String, Codable, Sendable {
        case configured
        case cleaned
    }

    public var id: Int64?
    public var jobKey: String
    public var batchJobID: String
    public var taskID: String?
    public var user: String
    public var uid: Int
    public var gid: Int
    public var home: String
    public var spoolDir: String?
    public var state: State
    public var createdAt: Double
    public var cleanedAt: Double?
    // What the batch system says about the job (0002_batch).
    public var cgroup: String?
    public var parentPID: Int?
    public var queue: String?
    public var host: String?
    public var jobName: String?
    public var account: String?
    public var submissionTime: Double?
    public var startTime: Double?
    public var maxCPUSeconds: Double?
    public var maxMemBytes: Int64?
    public var terminateMethod: String?
    public var monitorState: MonitorState = .unmonitored
    public var failed: Int = 0
    public var exitStatus: Int = 0
    public var killReason: String?

    /// Where the monitor stands with the job.
    public enum MonitorState: String, Codable, Sendable {
        case live, killed, vanished, unmonitored
    }

    enum CodingKeys: String, CodingKey {
        case id, user, uid, gid, home, state, cgroup, queue, host, account, failed
        case jobKey = "job_key"
        case batchJobID = "batch_job_id"
        case taskID = "task_id"
        case spoolDir = "spool_dir"
        case createdAt = "created_at"
        case cleanedAt = "cleaned_at"
        case parentPID = "parent_pid"
        case jobName = "job_name"
        case submissionTime = "submission_time"
        case startTime = "start_time"
        case maxCPUSeconds = "max_cpu_seconds"
        case maxMemBytes = "max_mem_bytes"
        case terminateMethod = "terminate_method"
        case monitorState = "monitor_state"
        case exitStatus = "exit_status"
        case killReason = "kill_reason"
    }

    public init(batchJobID: String, taskID: String?, user: String, uid: Int, gid: Int, home: String,
                spoolDir: String?, createdAt: Double = Date().timeIntervalSince1970) {
        self.id = nil
        self.jobKey = JobRecord.key(jobID: batchJobID, taskID: taskID)
        self.batchJobID = batchJobID
        self.taskID = taskID
        self.user = user
        self.uid = uid
        self.gid = gid
        self.home = home
        self.spoolDir = spoolDir
        self.state = .configured
        self.createdAt = createdAt
        self.cleanedAt = nil
    }

    /// "<job>" or "<job>.<task>": array tasks are distinct jobs.
    public static func key(jobID: String, taskID: String?) -> String {
        guard let taskID else { return jobID }
        return "\(jobID).\(taskID)"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// A user token, by the hash of its secret (table `tokens`).
public struct TokenRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tokens"

    public var hash: String
    public var jobID: Int64
    public var createdAt: Double
    public var revokedAt: Double?

    enum CodingKeys: String, CodingKey {
        case hash
        case jobID = "job_id"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    public init(hash: String, jobID: Int64, createdAt: Double = Date().timeIntervalSince1970) {
        self.hash = hash
        self.jobID = jobID
        self.createdAt = createdAt
        self.revokedAt = nil
    }
}

/// A container started through bdocker (table `containers`).
public struct ContainerRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "containers"

    public var id: String
    public var jobID: Int64
    public var image: String
    public var createdAt: Double
    public var removedAt: Double?
    /// The directory under the bind staging root holding this container's pinned binds.
    public var bindStage: String?

    enum CodingKeys: String, CodingKey {
        case id, image
        case jobID = "job_id"
        case createdAt = "created_at"
        case removedAt = "removed_at"
        case bindStage = "bind_stage"
    }

    public init(id: String, jobID: Int64, image: String, createdAt: Double = Date().timeIntervalSince1970,
                bindStage: String? = nil) {
        self.id = id
        self.jobID = jobID
        self.image = image
        self.createdAt = createdAt
        self.removedAt = nil
        self.bindStage = bindStage
    }
}

/// One monitor reading of a job (table `samples`).
public struct SampleRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "samples"

    public var jobID: Int64
    public var takenAt: Double
    public var cpuNanosTree: Int64
    public var cpuNanosCommon: Int64
    public var memBytesTree: Int64
    public var memBytesCommon: Int64
    public var maxMemBytesTree: Int64

    enum CodingKeys: String, CodingKey {
        case jobID = "job_id"
        case takenAt = "taken_at"
        case cpuNanosTree = "cpu_ns_tree"
        case cpuNanosCommon = "cpu_ns_common"
        case memBytesTree = "mem_bytes_tree"
        case memBytesCommon = "mem_bytes_common"
        case maxMemBytesTree = "max_mem_bytes_tree"
    }

    public init(jobID: Int64, takenAt: Double, cpuNanosTree: Int64, cpuNanosCommon: Int64, memBytesTree: Int64,
                memBytesCommon: Int64, maxMemBytesTree: Int64) {
        self.jobID = jobID
        self.takenAt = takenAt
        self.cpuNanosTree = cpuNanosTree
        self.cpuNanosCommon = cpuNanosCommon
        self.memBytesTree = memBytesTree
        self.memBytesCommon = memBytesCommon
        self.maxMemBytesTree = maxMemBytesTree
    }
}

/// An accounting record waiting for delivery (table `outbox`).
public struct OutboxRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "outbox"

    public enum State: String, Codable, Sendable {
        case pending, delivered, rejected
    }

    public var id: Int64?
    public var jobID: Int64
    /// The record as JSON.
    public var record: String
    /// The same record as one SGE accounting line.
    public var line: String
    public var createdAt: Double
    public var state: State
    public var attempts: Int
    public var nextTryAt: Double
    public var deliveredAt: Double?
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case id, record, line, state, attempts
        case jobID = "job_id"
        case createdAt = "created_at"
        case nextTryAt = "next_try_at"
        case deliveredAt = "delivered_at"
        case lastError = "last_error"
    }

    public init(jobID: Int64, record: String, line: String, createdAt: Double = Date().timeIntervalSince1970) {
        self.id = nil
        self.jobID = jobID
        self.record = record
        self.line = line
        self.createdAt = createdAt
        self.state = .pending
        self.attempts = 0
        self.nextTryAt = createdAt
        self.deliveredAt = nil
        self.lastError = nil
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

// MARK: columns, states and the queries the daemon runs

// States are stored as their raw strings (the tables' CHECK constraints name them).
extension JobRecord.State: DatabaseValueConvertible {}
extension JobRecord.MonitorState: DatabaseValueConvertible {}
extension OutboxRecord.State: DatabaseValueConvertible {}

extension JobRecord {
    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let jobKey = Column(CodingKeys.jobKey)
        public static let state = Column(CodingKeys.state)
        public static let cleanedAt = Column(CodingKeys.cleanedAt)
        public static let monitorState = Column(CodingKeys.monitorState)
        public static let failed = Column(CodingKeys.failed)
        public static let exitStatus = Column(CodingKeys.exitStatus)
        public static let killReason = Column(CodingKeys.killReason)
        public static let cgroup = Column(CodingKeys.cgroup)
        public static let maxCPUSeconds = Column(CodingKeys.maxCPUSeconds)
        public static let maxMemBytes = Column(CodingKeys.maxMemBytes)
    }

    public static let tokens = hasMany(TokenRecord.self)
    public static let samples = hasMany(SampleRecord.self)

    /// The live job under `key` (see `DerivableRequest<JobRecord>.live`).
    public static func live(key: String) -> QueryInterfaceRequest<JobRecord> { all().live(key: key) }

    /// The live job an unrevoked token with this hash belongs to (token authentication).
    public static func live(tokenHash: String) -> QueryInterfaceRequest<JobRecord> {
        all().live().joining(required: tokens.unrevoked().filter(TokenRecord.Columns.hash == tokenHash))
    }

    /// Live jobs the monitor samples.
    public static func monitored() -> QueryInterfaceRequest<JobRecord> { all().monitored() }
}

extension DerivableRequest<JobRecord> {
    /// Jobs not yet cleaned. Written as the partial indexes' own condition (`state <> 'cleaned'`,
    /// not `state = 'configured'`): SQLite uses a partial index only when the query repeats it.
    public func live() -> Self {
        filter(JobRecord.Columns.state != JobRecord.State.cleaned)
    }

    public func live(key: String) -> Self {
        live().filter(JobRecord.Columns.jobKey == key)
    }

    public func monitored() -> Self {
        live().filter(JobRecord.Columns.monitorState == JobRecord.MonitorState.live)
    }
}

extension TokenRecord {
    public enum Columns {
        public static let hash = Column(CodingKeys.hash)
        public static let jobID = Column(CodingKeys.jobID)
        public static let revokedAt = Column(CodingKeys.revokedAt)
    }

    public static let job = belongsTo(JobRecord.self)

    /// The job's tokens not yet revoked.
    public static func unrevoked(jobID: Int64) -> QueryInterfaceRequest<TokenRecord> {
        all().unrevoked().filter(Columns.jobID == jobID)
    }
}

extension DerivableRequest<TokenRecord> {
    public func unrevoked() -> Self { filter(TokenRecord.Columns.revokedAt == nil) }
}

extension ContainerRecord {
    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let jobID = Column(CodingKeys.jobID)
        public static let removedAt = Column(CodingKeys.removedAt)
        public static let bindStage = Column(CodingKeys.bindStage)
    }

    /// The job's containers not yet removed.
    public static func live(jobID: Int64) -> QueryInterfaceRequest<ContainerRecord> {
        all().notRemoved().filter(Columns.jobID == jobID)
    }

    /// The ids of `live(jobID:)`, through one cached statement: `ps` runs this on every call,
    /// and building the query interface's SQL each time cost more than the lookup.
    public static let liveIDsSQL = "SELECT id FROM containers WHERE removed_at IS NULL AND job_id = ?"

    public static func liveIDs(jobID: Int64, _ db: Database) throws -> [String] {
        try String.fetchAll(db.cachedStatement(sql: liveIDsSQL), arguments: [jobID])
    }
}

extension DerivableRequest<ContainerRecord> {
    public func notRemoved() -> Self { filter(ContainerRecord.Columns.removedAt == nil) }
}

extension SampleRecord {
    public enum Columns {
        public static let jobID = Column(CodingKeys.jobID)
        public static let takenAt = Column(CodingKeys.takenAt)
    }

    /// The job's samples, oldest first.
    public static func of(jobID: Int64) -> QueryInterfaceRequest<SampleRecord> {
        filter(Columns.jobID == jobID).order(Columns.takenAt)
    }
}

extension OutboxRecord {
    public enum Columns {
        public static let id = Column(CodingKeys.id)
        public static let state = Column(CodingKeys.state)
        public static let nextTryAt = Column(CodingKeys.nextTryAt)
    }

    public static func inState(_ state: State) -> QueryInterfaceRequest<OutboxRecord> {
        filter(Columns.state == state)
    }

    /// Makes every pending record due now (notify_accounting).
    public static func makeAllDue(_ db: Database) throws {
        try inState(.pending).updateAll(db, Columns.nextTryAt.set(to: 0))
    }

    /// Pending records whose next try is due, oldest first.
    public static func due(now: Double) -> QueryInterfaceRequest<OutboxRecord> {
        inState(.pending).filter(Columns.nextTryAt <= now).order(Columns.id)
    }
}
