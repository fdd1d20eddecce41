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

    enum CodingKeys: String, CodingKey {
        case id, user, uid, gid, home, state
        case jobKey = "job_key"
        case batchJobID = "batch_job_id"
        case taskID = "task_id"
        case spoolDir = "spool_dir"
        case createdAt = "created_at"
        case cleanedAt = "cleaned_at"
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

    enum CodingKeys: String, CodingKey {
        case id, image
        case jobID = "job_id"
        case createdAt = "created_at"
        case removedAt = "removed_at"
    }

    public init(id: String, jobID: Int64, image: String, createdAt: Double = Date().timeIntervalSince1970) {
        self.id = id
        self.jobID = jobID
        self.image = image
        self.createdAt = createdAt
        self.removedAt = nil
    }
}
