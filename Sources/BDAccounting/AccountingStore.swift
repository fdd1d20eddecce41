import BDCore
import Foundation
import GRDB

/// The accounting daemon's tables (`migrations/accounting/0001_init.sql`): the records and the
/// confirmed state of the accounting file. Only `AccountingLedger` writes here.
struct AccountingStore: Sendable {
    let pool: DatabasePool

    /// What storing one record did.
    enum Admission: Equatable {
        case stored
        /// The identical record was already stored.
        case alreadyStored
    }

    /// A stored record's line, waiting to be confirmed in the file.
    struct PendingLine: Equatable {
        var id: Int64
        var line: String
    }

    /// The `accounting_file` row.
    struct FileState: Equatable {
        var endOffset: Int64
        /// The record whose line ends at `endOffset`; nil when the header does.
        var lastRecordID: Int64?
    }

    /// Stores each record unless its key is already there, in one transaction (one commit for a
    /// whole batch). A different record under an existing key is refused: records are write-once.
    ///
    /// Two cached statements rather than the query interface: building a query's SQL for every
    /// record was most of a batch's CPU time.
    /// `senders` names, per record, the node that sent it (`sent_by`); nil or short: not known.
    func admit(_ records: [SGEAccountingRecord], senders: [String?] = []) throws(BDockerError) -> [Result<Admission, BDockerError>] {
        let now = Date().timeIntervalSince1970
        return try access("storing accounting records") {
            try transaction(.durable) { db in
                let find = try db.cachedStatement(sql: Self.findByKeySQL)
                let insert = try db.cachedStatement(sql: Self.insertSQL)
                return try records.enumerated().map { i, r -> Result<Admission, BDockerError> in
                    let line = r.line()
                    if let stored = try Row.fetchOne(find, arguments: [r.hostname, r.jobNumber, r.taskNumber, r.startTime]) {
                        guard stored[0] as String == line else {
                            let received = Self.utc(stored[1] as Double)
                            return .failure(.conflict("a different record for \(r.key) is already stored (received "
                                + "\(received) UTC); accounting records are write-once"))
                        }
                        return .success(.alreadyStored)
                    }
                    let sender = i < senders.count ? senders[i] : nil
                    try insert.execute(arguments: Self.insertArguments(r, line: line, receivedAt: now, sentBy: sender))
                    return .success(.stored)
                }
            }
        }
    }

    /// The duplicate check: the record's key, the table's UNIQUE index (QueryPlanTests).
    static let findByKeySQL = "SELECT line, received_at FROM records "
        + "WHERE hostname = ? AND job_number = ? AND task_number = ? AND start_time = ?"

    static let insertColumns = ["hostname", "job_number", "task_number", "start_time", "submission_time", "end_time", "qname",
                                "owner", "grp", "job_name", "account", "project", "department", "granted_pe", "slots", "failed",
                                "exit_status", "ru_wallclock", "ru_utime", "ru_stime", "ru_maxrss", "cpu", "mem", "io", "iow",
                                "maxvmem", "line", "received_at", "sent_by"]
    static let insertSQL = "INSERT INTO records (\(insertColumns.joined(separator: ", "))) VALUES ("
        + Array(repeating: "?", count: insertColumns.count).joined(separator: ", ") + ")"

    /// In `insertColumns`' order.
    static func insertArguments(_ r: SGEAccountingRecord, line: String, receivedAt: Double, sentBy: String? = nil) -> StatementArguments {
        let values: [(any DatabaseValueConvertible)?] = [
            r.hostname, r.jobNumber, r.taskNumber, r.startTime, r.submissionTime, r.endTime, r.qname,
            r.owner, r.group, r.jobName, r.account, r.project, r.department, r.grantedPE, r.slots, r.failed,
            r.exitStatus, r.ruWallclock, r.ruUtime, r.ruStime, r.ruMaxrss, r.cpu, r.mem, r.io, r.iow,
            r.maxvmem, line, receivedAt, sentBy,
        ]
        return StatementArguments(values)
    }

    /// "2026-12-04 16:42:59": how SQLite's datetime() showed the time (whole seconds, UTC).
    static func utc(_ time: Double) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: time.rounded(.down)))
    }

    /// Records not yet confirmed in the file, in id order (the order their lines go in).
    func pendingLines() throws(BDockerError) -> [PendingLine] {
        try access("reading pending accounting records") {
            try pool.read { db in
                try StoredRecord.notAppended().select(StoredRecord.Columns.id, StoredRecord.Columns.line)
                    .asRequest(of: Row.self).fetchAll(db)
                    .map { PendingLine(id: $0[StoredRecord.Columns.id], line: $0[StoredRecord.Columns.line]) }
            }
        }
    }

    /// The line of one record (the one the confirmed part of the file ends with).
    func line(ofRecord id: Int64) throws(BDockerError) -> String? {
        try access("reading accounting record \(id)") {
            try pool.read { db in
                try StoredRecord.filter(key: id).select(StoredRecord.Columns.line, as: String.self).fetchOne(db)
            }
        }
    }

    func fileState() throws(BDockerError) -> FileState? {
        try access("reading the accounting file state") {
            try pool.read { db in
                try AccountingFileRecord.fetchOne(db, key: AccountingFileRecord.only)
                    .map { FileState(endOffset: $0.endOffset, lastRecordID: $0.lastRecordID) }
            }
        }
    }

    /// Records that a new file was begun (its header written and synced): nothing is in it yet.
    func beginFile(path: String, headerBytes: Int64) throws(BDockerError) {
        let now = Date().timeIntervalSince1970
        try access("recording the new accounting file") {
            try transaction(.durable) { db in
                try AccountingFileRecord(path: path, endOffset: headerBytes, lastRecordID: nil, startedAt: now).save(db)
            }
        }
    }

    /// Marks lines as durably in the file (each starting at its offset) and moves the confirmed
    /// end past them, in one transaction.
    func confirm(_ lines: [(id: Int64, offset: Int64)], end: Int64) throws(BDockerError) {
        guard let last = lines.last else { return }
        let now = Date().timeIntervalSince1970
        try access("confirming appended accounting lines") {
            try transaction(.deferredSync) { db in
                // One prepared statement for the whole batch (a query-interface update would be
                // built and parsed again for every line).
                let mark = try db.cachedStatement(sql: "UPDATE records SET appended_at = ?, file_offset = ? WHERE id = ?")
                for line in lines {
                    try mark.execute(arguments: [now, line.offset, line.id])
                }
                try AccountingFileRecord.filter(key: AccountingFileRecord.only).updateAll(db,
                    AccountingFileRecord.Columns.endOffset.set(to: end), AccountingFileRecord.Columns.lastRecordID.set(to: last.id))
            }
        }
    }

    /// How a commit reaches the disk (`PRAGMA synchronous`, set on the one writer connection).
    enum Sync: String {
        /// FULL: synced before the commit returns. Records must be durable before their lines
        /// are written (the invariant in `AccountingFile`).
        case durable = "FULL"
        /// NORMAL: in WAL mode synced by the next durable commit or checkpoint. For confirmations
        /// only: losing one in a power cut leaves lines that the next repair confirms again.
        case deferredSync = "NORMAL"
    }

    private func transaction<T>(_ sync: Sync, _ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(sync.rawValue)")
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            return result!  // set: inTransaction returned, so the body ran to its end
        }
    }

    /// Runs a database access, describing a failure as the daemon's fault (500): the sender
    /// retries those, and the record is never half-stored (each call is one transaction).
    private func access<T>(_ what: String, _ body: () throws -> T) throws(BDockerError) -> T {
        try BDockerError.wrapping("\(what) in \(pool.path) failed", body)
    }
}
