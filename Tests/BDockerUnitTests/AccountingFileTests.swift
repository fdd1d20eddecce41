@testable import BDAccounting
@testable import BDBatch
import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Logging
import Testing

/// The accounting file's exactly-once append, crash by crash: each test leaves the store and the
/// file as a crash at one point would, then checks what the next start makes of them.
@Suite("Accounting file repair")
struct AccountingFileTests {
    let dir = TempDir("bdocker-acctfile")
    let database: BDockerDatabase
    let store: AccountingStore
    var path: String { dir.file("accounting") }
    static let header = SGEAccountingRecord.fileHeader

    init() throws {
        database = try BDockerDatabase.open(path: dir.file("acct.sqlite"), role: "accounting", migrationsDir: nil)
        store = AccountingStore(pool: database.pool)
    }

    func file() -> AccountingFile {
        AccountingFile(path: path, store: store, logger: Logger(label: "test"))
    }

    func content() throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Stores records as the ledger's first step does, without touching the file.
    func commitOnly(_ records: [SGEAccountingRecord]) throws {
        for admission in try store.admit(records) { _ = try admission.get() }
        // Records are synced before their lines are written (invariant point 1): FULL.
        #expect(try database.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
    }

    func appendRaw(_ text: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    func unconfirmed() throws -> Int {
        try database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records WHERE appended_at IS NULL") ?? -1 }
    }

    func lines(_ records: [SGEAccountingRecord]) -> String {
        records.map { $0.line() + "\n" }.joined()
    }

    @Test func aNewFileGetsTheHeaderAndEveryLineOnce() throws {
        let records = (1...3).map { SampleAccounting.record(job: $0) }
        var f = file()
        let receipts = f.commit(records)
        #expect(receipts.allSatisfy { (try? $0.get().new) == true })
        #expect(try content() == Self.header + lines(records))
        // The same records again: acknowledged, not added.
        #expect(f.commit(records).allSatisfy { (try? $0.get().new) == false })
        #expect(try content() == Self.header + lines(records))
        #expect(try unconfirmed() == 0)
        f.closeFile()
    }

    @Test func committedButNeverAppended() throws {
        let first = SampleAccounting.record(job: 1)
        var f = file()
        _ = f.commit([first])
        f.closeFile()
        // Crash after the commit, before the write.
        let lost = [SampleAccounting.record(job: 2), SampleAccounting.record(job: 3)]
        try commitOnly(lost)
        var restarted = file()
        try restarted.appendPending()
        #expect(try content() == Self.header + lines([first] + lost))
        #expect(try unconfirmed() == 0)
        restarted.closeFile()
    }

    @Test func appendedButNotMarked() throws {
        var f = file()
        let first = SampleAccounting.record(job: 1)
        _ = f.commit([first])
        f.closeFile()
        // Crash after the write (even after the fsync), before the confirming commit.
        let written = [SampleAccounting.record(job: 2), SampleAccounting.record(job: 3)]
        try commitOnly(written)
        try appendRaw(lines(written))
        var restarted = file()
        try restarted.appendPending()
        #expect(try content() == Self.header + lines([first] + written))
        #expect(try unconfirmed() == 0)
        // And the offsets recorded for them point at their lines.
        let offset = try database.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT file_offset FROM records WHERE job_number = 3")
        }
        #expect(offset == (Self.header + lines([first, written[0]])).utf8.count)
        restarted.closeFile()
    }

    @Test func aTornLastLineIsCutAndWrittenWhole() throws {
        var f = file()
        _ = f.commit([SampleAccounting.record(job: 1)])
        f.closeFile()
        // Crash in the middle of writing two lines: the first whole, the second cut.
        let batch = [SampleAccounting.record(job: 2), SampleAccounting.record(job: 3)]
        try commitOnly(batch)
        let second = batch[1].line()
        try appendRaw(batch[0].line() + "\n" + second.prefix(second.count / 2))
        var restarted = file()
        try restarted.appendPending()
        #expect(try content() == Self.header + lines([SampleAccounting.record(job: 1)] + batch))
        // A line cut just before its newline is torn too.
        try commitOnly([SampleAccounting.record(job: 4)])
        try appendRaw(SampleAccounting.record(job: 4).line())
        restarted.closeFile()
        var again = file()
        try again.appendPending()
        #expect(try content() == Self.header + lines((1...4).map { SampleAccounting.record(job: $0) }))
        #expect(try unconfirmed() == 0)
        again.closeFile()
    }

    @Test func aHeaderCutShortIsWrittenAgain() throws {
        dir.write("accounting", String(Self.header.prefix(7)))
        try commitOnly([SampleAccounting.record(job: 1)])
        var f = file()
        try f.appendPending()
        #expect(try content() == Self.header + lines([SampleAccounting.record(job: 1)]))
        f.closeFile()
    }

    @Test func aRotatedFileBeginsAgainWithWhatIsNotYetInTheOldOne() throws {
        var f = file()
        _ = f.commit([SampleAccounting.record(job: 1)])
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        // The daemon notices the file moved away before its next append.
        _ = f.commit([SampleAccounting.record(job: 2)])
        #expect(try content() == Self.header + lines([SampleAccounting.record(job: 2)]))
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == Self.header + lines([SampleAccounting.record(job: 1)]))
        f.closeFile()
    }

    @Test func aFileChangedBySomeoneElseStopsTheDaemonAndIsLeftAlone() throws {
        var f = file()
        _ = f.commit([SampleAccounting.record(job: 1)])
        f.closeFile()
        try appendRaw("garbage:not:ours\n")
        let before = try content()
        try commitOnly([SampleAccounting.record(job: 2)])
        var restarted = file()
        #expect(throws: BDockerError.self) { try restarted.appendPending() }
        #expect(try content() == before)
        restarted.closeFile()

        // Cut shorter than confirmed: refused as well.
        try before.prefix(before.utf8.count - 30).write(toFile: path, atomically: false, encoding: .utf8)
        var cut = file()
        #expect(throws: BDockerError.self) { try cut.appendPending() }
        cut.closeFile()
    }

    @Test func aFileThisDatabaseNeverWroteIsNotAdopted() throws {
        dir.write("accounting", Self.header + SampleAccounting.record(job: 77).line() + "\n")
        try commitOnly([SampleAccounting.record(job: 1)])
        var f = file()
        do {
            try f.appendPending()
            Issue.record("a foreign file was adopted")
        } catch {
            #expect(error.message.contains("never written to it"))
        }
        f.closeFile()
    }

    @Test func aDifferentRecordUnderAnExistingKeyIsAConflict() throws {
        var f = file()
        let original = SampleAccounting.record(job: 1)
        _ = f.commit([original])
        let changed = SampleAccounting.record(job: 1, variant: 0.5)
        let results = f.commit([changed])
        guard case .failure(.conflict) = results[0] else {
            Issue.record("expected a conflict, got \(results[0])")
            return
        }
        #expect(try content() == Self.header + lines([original]))
        f.closeFile()
    }

    @Test func oneAppenderPerFile() throws {
        var first = file()
        try first.appendPending()
        var second = file()
        #expect(throws: BDockerError.self) { try second.appendPending() }
        first.closeFile()
        try second.appendPending()
        second.closeFile()
    }

    /// The ledger: many concurrent submissions, each once, sharing commits and fsyncs; a
    /// restart finds nothing to do.
    @Test func concurrentSubmissionsAreWrittenOnceAndShareSyncs() async throws {
        let ledger = try AccountingLedger(database: database, filePath: path, logger: Logger(label: "test"))
        let records = (1...200).map { SampleAccounting.record(job: $0, host: "node\($0 % 4)") }
        let receipts = try await withThrowingTaskGroup(of: [AccountingReceipt].self) { group in
            for client in 0..<16 {
                group.addTask {
                    var mine: [AccountingReceipt] = []
                    // Every client sends its share twice (a retry), interleaved with the others.
                    for r in records.indices where r % 16 == client {
                        mine.append(try await ledger.submit(records[r]))
                        mine.append(try await ledger.submit(records[r]))
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(receipts.count == 400)
        #expect(receipts.filter(\.new).count == 200)
        await ledger.close()

        let text = try content()
        #expect(text.hasPrefix(Self.header))
        let written = text.dropFirst(Self.header.count).split(separator: "\n").map(String.init)
        #expect(written.count == 200)
        #expect(Set(written) == Set(records.map { $0.line() }))
        let batches = try await database.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT appended_at) FROM records") ?? 0
        }
        #expect(batches < 200, "group commit: lines confirmed together share one fsync")

        let restarted = try AccountingLedger(database: database, filePath: path, logger: Logger(label: "test"))
        #expect(try await restarted.submit(records[0]).new == false)
        await restarted.close()
        #expect(try content() == text)
    }
}

extension AccountingFile {
    /// What the ledger does for one batch, in one step: commit the records, then append every
    /// line the file lacks. The result of each record: its admission, or the append's failure.
    mutating func commit(_ records: [SGEAccountingRecord]) -> [Result<AccountingReceipt, BDockerError>] {
        let admissions: [Result<AccountingStore.Admission, BDockerError>]
        do {
            admissions = try store.admit(records)
        } catch {
            return Array(repeating: .failure(error), count: records.count)
        }
        let appended = Result { () throws(BDockerError) in try appendPending() }
        return zip(records, admissions).map { record, admission in
            admission.flatMap { admitted in
                appended.map { AccountingReceipt(new: admitted == .stored, record: record.key.description) }
            }
        }
    }
}
