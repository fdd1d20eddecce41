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
    func admit(_ records: [SGEAccountingRecord]) throws(BDockerError) -> [Result<Admission, BDockerError>] {
        let now = Date().timeIntervalSince1970
        return try access("storing accounting records") {
            try transaction(.durable) { db in
                let find = try db.cachedStatement(sql: """
                    SELECT line, datetime(received_at, 'unixepoch') AS received FROM records
                    WHERE hostname = ? AND job_number = ? AND task_number = ? AND start_time = ?
                    """)
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO records (hostname, job_number, task_number, start_time, submission_time, end_time,
                        qname, owner, grp, job_name, account, project, department, granted_pe, slots, failed,
                        exit_status, ru_wallclock, ru_utime, ru_stime, ru_maxrss, cpu, mem, io, iow, maxvmem, line,
                        received_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                return try records.map { r -> Result<Admission, BDockerError> in
                    let line = r.line()
                    if let row = try Row.fetchOne(find, arguments: [r.hostname, r.jobNumber, r.taskNumber, r.startTime]) {
                        guard row["line"] as String == line else {
                            return .failure(.conflict("a different record for \(r.key) is already stored (received "
                                + "\(row["received"] as String) UTC); accounting records are write-once"))
                        }
                        return .success(.alreadyStored)
                    }
                    try insert.execute(arguments: [
                        r.hostname, r.jobNumber, r.taskNumber, r.startTime, r.submissionTime, r.endTime,
                        r.qname, r.owner, r.group, r.jobName, r.account, r.project, r.department, r.grantedPE, r.slots,
                        r.failed, r.exitStatus, r.ruWallclock, r.ruUtime, r.ruStime, r.ruMaxrss, r.cpu, r.mem, r.io,
                        r.iow, r.maxvmem, line, now,
                    ])
                    return .success(.stored)
                }
            }
        }
    }

    /// Records not yet confirmed in the file, in id order (the order their lines go in).
    func pendingLines() throws(BDockerError) -> [PendingLine] {
        try access("reading pending accounting records") {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT id, line FROM records WHERE appended_at IS NULL ORDER BY id")
                    .map { PendingLine(id: $0["id"], line: $0["line"]) }
            }
        }
    }

    /// The line of one record (the one the confirmed part of the file ends with).
    func line(ofRecord id: Int64) throws(BDockerError) -> String? {
        try access("reading accounting record \(id)") {
            try pool.read { db in try String.fetchOne(db, sql: "SELECT line FROM records WHERE id = ?", arguments: [id]) }
        }
    }

    func fileState() throws(BDockerError) -> FileState? {
        try access("reading the accounting file state") {
            try pool.read { db in
                try Row.fetchOne(db, sql: "SELECT end_offset, last_record_id FROM accounting_file WHERE id = 1")
                    .map { FileState(endOffset: $0["end_offset"], lastRecordID: $0["last_record_id"]) }
            }
        }
    }

    /// Records that a new file was begun (its header written and synced): nothing is in it yet.
    func beginFile(path: String, headerBytes: Int64) throws(BDockerError) {
        let now = Date().timeIntervalSince1970
        try access("recording the new accounting file") {
            try transaction(.durable) { db in
                try db.execute(sql: """
                    INSERT INTO accounting_file (id, path, end_offset, last_record_id, started_at) VALUES (1, ?, ?, NULL, ?)
                    ON CONFLICT (id) DO UPDATE SET path = excluded.path, end_offset = excluded.end_offset,
                        last_record_id = NULL, started_at = excluded.started_at
                    """, arguments: [path, headerBytes, now])
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
                let mark = try db.cachedStatement(sql: "UPDATE records SET appended_at = ?, file_offset = ? WHERE id = ?")
                for line in lines { try mark.execute(arguments: [now, line.offset, line.id]) }
                try db.execute(sql: "UPDATE accounting_file SET end_offset = ?, last_record_id = ? WHERE id = 1",
                               arguments: [end, last.id])
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
        do {
            return try body()
        } catch let error as BDockerError {
            throw error
        } catch {
            throw .internalFault("\(what) in \(pool.path): \(error)")
        }
    }
}
