import Foundation
import GRDB

/// A row of the accounting daemon's `records` table: the record's fields copied for queries and
/// audits beside its canonical SGE `line`, and the marker of its append to the file.
struct StoredRecord: Codable, FetchableRecord, MutablePersistableRecord {
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

    init(_ r: SGEAccountingRecord, line: String, receivedAt: Double) {
        id = nil
        hostname = r.hostname; jobNumber = r.jobNumber; taskNumber = r.taskNumber; startTime = r.startTime
        submissionTime = r.submissionTime; endTime = r.endTime; qname = r.qname; owner = r.owner; grp = r.group
        jobName = r.jobName; account = r.account; project = r.project; department = r.department
        grantedPE = r.grantedPE; slots = r.slots; failed = r.failed; exitStatus = r.exitStatus
        ruWallclock = r.ruWallclock; ruUtime = r.ruUtime; ruStime = r.ruStime; ruMaxrss = r.ruMaxrss
        cpu = r.cpu; mem = r.mem; io = r.io; iow = r.iow; maxvmem = r.maxvmem
        self.line = line
        self.receivedAt = receivedAt
        appendedAt = nil
        fileOffset = nil
    }

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }

    /// Written by hand rather than through Codable: the batch ingest inserts thousands of rows
    /// a second, and Codable's generic encoding was most of its CPU time.
    func encode(to container: inout PersistenceContainer) {
        container[CodingKeys.id.rawValue] = id
        container[CodingKeys.hostname.rawValue] = hostname
        container[CodingKeys.jobNumber.rawValue] = jobNumber
        container[CodingKeys.taskNumber.rawValue] = taskNumber
        container[CodingKeys.startTime.rawValue] = startTime
        container[CodingKeys.submissionTime.rawValue] = submissionTime
        container[CodingKeys.endTime.rawValue] = endTime
        container[CodingKeys.qname.rawValue] = qname
        container[CodingKeys.owner.rawValue] = owner
        container[CodingKeys.grp.rawValue] = grp
        container[CodingKeys.jobName.rawValue] = jobName
        container[CodingKeys.account.rawValue] = account
        container[CodingKeys.project.rawValue] = project
        container[CodingKeys.department.rawValue] = department
        container[CodingKeys.grantedPE.rawValue] = grantedPE
        container[CodingKeys.slots.rawValue] = slots
        container[CodingKeys.failed.rawValue] = failed
        container[CodingKeys.exitStatus.rawValue] = exitStatus
        container[CodingKeys.ruWallclock.rawValue] = ruWallclock
        container[CodingKeys.ruUtime.rawValue] = ruUtime
        container[CodingKeys.ruStime.rawValue] = ruStime
        container[CodingKeys.ruMaxrss.rawValue] = ruMaxrss
        container[CodingKeys.cpu.rawValue] = cpu
        container[CodingKeys.mem.rawValue] = mem
        container[CodingKeys.io.rawValue] = io
        container[CodingKeys.iow.rawValue] = iow
        container[CodingKeys.maxvmem.rawValue] = maxvmem
        container[CodingKeys.line.rawValue] = line
        container[CodingKeys.receivedAt.rawValue] = receivedAt
        container[CodingKeys.appendedAt.rawValue] = appendedAt
        container[CodingKeys.fileOffset.rawValue] = fileOffset
    }

    /// The stored record under the key (the table's unique key: the duplicate check).
    static func keyed(_ key: AccountingKey) -> QueryInterfaceRequest<StoredRecord> {
        filter(Columns.hostname == key.hostname && Columns.jobNumber == key.jobNumber
               && Columns.taskNumber == key.taskNumber && Columns.startTime == key.startTime)
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
