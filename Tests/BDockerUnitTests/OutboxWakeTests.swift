import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

/// The outbox sender sleeps until the next record is due and wakes at once when kicked: no
/// polling in between.
@Suite("Outbox: wakes on a kick")
struct OutboxWakeTests {
    let dir = TempDir("bdocker-outbox")

    @Test(.timeLimit(.minutes(1))) func aKickDeliversAtOnceAndWithoutOneTheLoopSleeps() async throws {
        let database = try BDockerDatabase.open(path: dir.file("w.sqlite"), role: "working", migrationsDir: nil)
        // Nothing listens on port 1: each try fails at once and shows in `attempts`.
        let sender = OutboxSender(pool: database.pool, endpoint: "http://127.0.0.1:1", adminToken: "x",
                                  timeoutSeconds: 5, logger: Logger(label: "test"))
        func attempts() async throws -> Int {
            try await database.pool.read { try OutboxRecord.fetchOne($0)?.attempts ?? -1 }
        }
        let loop = Task { await sender.run() }
        // The empty outbox makes the loop sleep for its longest wait (30 s). Wait until it does:
        // on a busy machine its first pass can come late and would find the record below.
        let started = ContinuousClock.now
        while !sender.isAsleep && ContinuousClock.now - started < .seconds(20) {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(sender.isAsleep, "the sender's loop never went to sleep on an empty outbox")
        try await database.pool.write { db in
            var job = JobRecord(batchJobID: "1", taskID: nil, user: "ann", uid: 5000, gid: 5000, home: "/tmp", spoolDir: nil)
            job.state = .cleaned
            try job.insert(db)
            var record = OutboxRecord(jobID: job.id!, record: "{}", line: "x")
            record.nextTryAt = 0
            try record.insert(db)
        }
        // Due, but nobody kicked: the sleeping loop does not look.
        try await Task.sleep(for: .seconds(1))
        #expect(try await attempts() == 0)
        #expect(sender.isAsleep)

        // Kicked, it looks at once. Without the kick it would sleep out its 30 s, so delivery
        // well inside that proves the wake-up (no tighter bound: this machine is shared and busy).
        let kicked = ContinuousClock.now
        sender.kick()
        while try await attempts() == 0 && ContinuousClock.now - kicked < .seconds(10) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try await attempts() >= 1, "no delivery attempt within 10 s of the kick")

        // Cancelling (graceful shutdown) ends the sleep too, long before its 30 s are out.
        let cancelled = ContinuousClock.now
        loop.cancel()
        await loop.value
        #expect(ContinuousClock.now - cancelled < .seconds(10))
    }
}
