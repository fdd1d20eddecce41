import Foundation
import GRDB

/// A row of the accounting daemon's `records` table: the record's fields copied for queries and
/// audits beside its canonical SGE `line`, and the marker of its append to the file.
struct StoredRecord: Decodable, FetchableRecord, TableRecord {
    static let databaseTableName = "records"

    var id: Int64?
    var hostname: String
    var jobNumber: Int
    var taskNumber: Int
    var startTime: Int
    var submissionTime: Int
    var endTime: Int
    var qname: String
    var owner: String
    var grp: String
    var jobName: String
    var account: String
    var project: String
    var department: String
    var grantedPE: String
    var slots: Int
    var failed: Int
    var exitStatus: Int
    var ruWallclock: Int
    var ruUtime: Double
    var ruStime: Double
    var ruMaxrss: Double
    var cpu: Double
    var mem: Double
    var io: Double
    var iow: Double
    var maxvmem: Double
    var line: String
    var receivedAt: Double
    var appendedAt: Double?
    var fileOffset: Int64?
    /// The node whose client certificate carried it (per-node mode); nil otherwise.
    var sentBy: String?

    enum CodingKeys: String, CodingKey {
        case id, hostname, qname, owner, grp, account, project, department, slots, failed, cpu, mem, io, iow, maxvmem, line
        case jobNumber = "job_number"
        case taskNumber = "task_number"
        case startTime = "start_time"
        case submissionTime = "submission_time"
        case endTime = "end_time"
        case jobName = "job_name"
        case grantedPE = "granted_pe"
        case exitStatus = "exit_status"
        case ruWallclock = "ru_wallclock"
        case ruUtime = "ru_utime"
        case ruStime = "ru_stime"
        case ruMaxrss = "ru_maxrss"
        case receivedAt = "received_at"
        case appendedAt = "appended_at"
        case fileOffset = "file_offset"
    }

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let hostname = Column(CodingKeys.hostname)
        static let jobNumber = Column(CodingKeys.jobNumber)
        static let taskNumber = Column(CodingKeys.taskNumber)
        static let startTime = Column(CodingKeys.startTime)
        static let line = Column(CodingKeys.line)
        static let receivedAt = Column(CodingKeys.receivedAt)
        static let appendedAt = Column(CodingKeys.appendedAt)
        static let fileOffset = Column(CodingKeys.fileOffset)
    }

    /// Records whose line is not confirmed in the file yet, in id order (their order there).
    static func notAppended() -> QueryInterfaceRequest<StoredRecord> {
        filter(Columns.appendedAt == nil).order(Columns.id)
    }
}

/// The one row of `accounting_file`: how much of the accounting file is confirmed.
struct AccountingFileRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "accounting_file"
    /// The table holds one row, with this id.
    static let only: Int64 = 1

    var id: Int64 = AccountingFileRecord.only
    var path: String
    var endOffset: Int64
    var lastRecordID: Int64?
    var startedAt: Double

    enum CodingKeys: String, CodingKey {
        case id, path
        case endOffset = "end_offset"
        case lastRecordID = "last_record_id"
        case startedAt = "started_at"
    }

    enum Columns {
        static let endOffset = Column(CodingKeys.endOffset)
        static let lastRecordID = Column(CodingKeys.lastRecordID)
    }
}
