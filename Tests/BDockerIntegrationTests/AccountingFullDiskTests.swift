import BDAccounting
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import Testing

/// The accounting file on a filesystem that fills up (a small tmpfs, so root): records are
/// answered 503 and kept, a restart meanwhile still starts, and when the space returns every
/// record is written exactly once, by the ledger's own retry (tools/soak.sh does the same through both daemons).
@Suite("Accounting file on a full disk", .requires(.root))
struct AccountingFullDiskTests {
    /// A job whose line is longer than a page, so it never fits in the slack of the file's last
    /// page: its append must meet the full filesystem.
    static func record(job: Int) -> SGEAccountingRecord {
        SGEAccountingRecord(qname: "all.q", hostname: "node1", group: "users", owner: "ann",
                            jobName: "full-\(job)-" + String(repeating: "x", count: 5000), jobNumber: job,
                            submissionTime: 1_764_403_170, startTime: 1_764_403_200, endTime: 1_764_403_320)
    }

    @Test func answered503KeptAcrossARestartAndWrittenOnceWhenSpaceReturns() async throws {
        let dir = TempDir("bdocker-fulldisk")
        let fs = dir.mkdir("fs")
        try #require(mount("tmpfs", fs, "tmpfs", 0, "size=64k,mode=0755") == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
        defer {
            umount2(fs, Int32(MNT_DETACH))
            withExtendedLifetime(dir) {}
        }
        let database = try BDockerDatabase.open(path: dir.file("acct.sqlite"), role: "accounting", migrationsDir: nil)
        let path = fs + "/accounting"
        var ledger = try AccountingLedger(database: database, filePath: path, logger: Logger(label: "test"))
        let first = Self.record(job: 1)
        #expect(try await ledger.submit(first).new)

        // Fill the filesystem.
        let filler = open(fs + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(filler >= 0)
        let page = [UInt8](repeating: 0, count: 4096)
        while page.withUnsafeBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
        close(filler)

        // The first record after the disk filled is committed and acknowledged before its
        // append meets the full disk; from then on records are stored but answered 503.
        let waiting = [Self.record(job: 2), Self.record(job: 3)]
        _ = try? await ledger.submit(waiting[0])
        #expect(await ledger.settle() == false, "the append on the full disk failed")
        let problem = await ledger.fileProblem ?? "no problem"
        #expect(problem.contains("No space left"), "\(problem)")
        for record in waiting {
            let error = await failure { () async throws(BDockerError) in try await ledger.submit(record) }
            #expect(error?.httpStatus == 503, "\(String(describing: error))")
        }
        // Stored although not written.
        let stored = try await database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") }
        #expect(stored == 3)

        // A restart while the disk is still full: the daemon starts and answers 503 again.
        await ledger.close()
        ledger = try AccountingLedger(database: database, filePath: path, logger: Logger(label: "test"))
        let again = await failure { () async throws(BDockerError) in try await ledger.submit(waiting[0]) }
        #expect(again?.httpStatus == 503, "\(String(describing: again))")

        // Space returns: the ledger retries the file on its own and writes every waiting line,
        // once, with no new submission to prompt it.
        unlink(fs + "/filler")
        let expected = SGEAccountingRecord.fileHeader + ([first] + waiting).map { $0.line() + "\n" }.joined()
        #expect(try await eventually { await ledger.settle() }, "the file took the waiting lines")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == expected)
        #expect(try await ledger.submit(waiting[1]).new == false)
        #expect(try await ledger.submit(waiting[0]).new == false)
        await ledger.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == expected)
    }
}
