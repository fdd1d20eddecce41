@testable import BDAccounting
import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Testing

/// Every query on a hot path, checked with EXPLAIN QUERY PLAN on a real migrated database: each
/// must find its rows through an index, so it stays fast however long the node's history grows.
@Suite("Query plans")
struct QueryPlanTests {
    let dir = TempDir("bdocker-plans")

    /// The plan's detail lines, for the request as GRDB runs it (same SQL, same arguments).
    static func plan<R: FetchRequest>(_ request: R, _ db: Database) throws -> [String] {
        let statement = try request.makePreparedRequest(db, forSingleResult: false).statement
        return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + statement.sql, arguments: statement.arguments)
            .map { $0["detail"] as String }
    }

    /// Uses an index (or the rowid) for every table it reads, and scans none.
    static func usesIndexes(_ plan: [String]) -> Bool {
        !plan.isEmpty && plan.allSatisfy { line in
            !line.hasPrefix("SCAN ") || line.contains("USING INDEX") || line.contains("USING COVERING INDEX")
        } && plan.contains { $0.contains("USING INDEX") || $0.contains("USING COVERING INDEX") || $0.contains("USING INTEGER PRIMARY KEY") || $0.contains("USING PRIMARY KEY") }
    }

    func working(migrationsDir: String? = nil) throws -> BDockerDatabase {
        let db = try BDockerDatabase.open(path: dir.file("w-\(UUID().uuidString).sqlite"), role: "working",
                                          migrationsDir: migrationsDir)
        // Some history, so the planner has a table to avoid scanning.
        try db.pool.write { db in
            for n in 1...50 {
                var job = JobRecord(batchJobID: "\(n)", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/h", spoolDir: nil)
                if n < 45 { job.state = .cleaned }
                try job.insert(db)
            }
            try db.execute(sql: "ANALYZE")
        }
        return db
    }

    @Test func configureDuplicateCheckUsesTheLiveKeyIndex() throws {
        let db = try working()
        try db.pool.read { db in
            let plan = try Self.plan(JobRecord.live(key: "7"), db)
            #expect(Self.usesIndexes(plan), "\(plan)")
            #expect(plan.contains { $0.contains("jobs_live_key") }, "\(plan)")
            // Why `live` says `state <> 'cleaned'`: `state = 'configured'` does not match the
            // partial index's condition, and SQLite scans every job ever configured.
            let old = try Self.plan(JobRecord.filter(Column("job_key") == "7" && Column("state") == "configured"), db)
            #expect(old.contains { $0.hasPrefix("SCAN jobs") }, "\(old)")
        }
    }

    @Test func cleanAndUserCommandLookupsUseIndexes() throws {
        let db = try working()
        try db.pool.read { db in
            let requests: [(String, [String])] = [
                ("token authentication", try Self.plan(JobRecord.live(tokenHash: String(repeating: "a", count: 64)), db)),
                ("owned containers", try Self.plan(ContainerRecord.live(jobID: 3).select(ContainerRecord.Columns.id), db)),
                ("owned container ids as ps reads them", try Self.plan(SQLRequest<Row>(sql: ContainerRecord.liveIDsSQL, arguments: [3]), db)),
                ("removed containers' stages", try Self.plan(ContainerRecord.filter(keys: ["a", "b"]), db)),
                ("the job by id", try Self.plan(JobRecord.filter(key: 3), db)),
                ("the job's samples", try Self.plan(SampleRecord.of(jobID: 3), db)),
                ("the job's tokens to revoke", try Self.plan(TokenRecord.unrevoked(jobID: 3), db)),
            ]
            for (what, plan) in requests {
                #expect(Self.usesIndexes(plan), "\(what): \(plan)")
            }
        }
    }

    @Test func monitorReadsLiveJobsThroughAnIndex() throws {
        let db = try working()
        try db.pool.read { db in
            let plan = try Self.plan(JobRecord.monitored(), db)
            #expect(Self.usesIndexes(plan), "\(plan)")
            #expect(plan.contains { $0.contains("jobs_monitored") }, "\(plan)")
        }
        // Before 0004_monitored_index every tick scanned the whole jobs table.
        let migrations = dir.mkdir("before/working")
        for file in try MigrationSource.read(directory: Repo.path("migrations/working")) where file.number < 4 {
            _ = dir.write("before/working/\(file.identifier).sql", file.sql)
        }
        let before = try working(migrationsDir: (migrations as NSString).deletingLastPathComponent)
        try before.pool.read { db in
            let plan = try Self.plan(JobRecord.monitored(), db)
            #expect(plan.contains { $0.hasPrefix("SCAN jobs") }, "\(plan)")
        }
    }

    @Test func monitorSampleInsertChecksItsJobByPrimaryKey() throws {
        let db = try working()
        try db.pool.write { db in
            var statements: [String] = []
            db.trace(options: .statement) { event in
                if case .statement(let s) = event { statements.append(s.expandedSQL) }
            }
            try SampleRecord(jobID: 50, takenAt: 1, cpuNanosTree: 0, cpuNanosCommon: 0, memBytesTree: 0, memBytesCommon: 0,
                             maxMemBytesTree: 0).insert(db)
            db.trace(options: [], nil)
            let insert = try #require(statements.first { $0.hasPrefix("INSERT INTO \"samples\"") })
            let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + insert).map { $0["detail"] as String }
            #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(plan)")
        }
    }

    @Test func outboxQueriesUseThePendingIndex() throws {
        let db = try working()
        try db.pool.read { db in
            let requests: [(String, [String])] = [
                ("due", try Self.plan(OutboxRecord.due(now: 100).limit(500), db)),
                ("next due time", try Self.plan(OutboxRecord.inState(.pending).select(min(OutboxRecord.Columns.nextTryAt)), db)),
                ("count by state", try Self.plan(OutboxRecord.inState(.rejected).select(count(OutboxRecord.Columns.id)), db)),
            ]
            for (what, plan) in requests {
                #expect(Self.usesIndexes(plan), "\(what): \(plan)")
                #expect(plan.contains { $0.contains("outbox_pending") }, "\(what): \(plan)")
            }
        }
    }

    @Test func accountingDuplicateCheckUsesTheRecordKey() throws {
        let db = try BDockerDatabase.open(path: dir.file("a.sqlite"), role: "accounting", migrationsDir: nil)
        try db.pool.read { db in
            let key = AccountingKey(hostname: "node1", jobNumber: 42, taskNumber: 0, startTime: 1_700_000_000)
            let requests: [(String, [String])] = [
                ("duplicate check", try Self.plan(SQLRequest<Row>(sql: AccountingStore.findByKeySQL,
                    arguments: [key.hostname, key.jobNumber, key.taskNumber, key.startTime]), db)),
                ("lines to append", try Self.plan(StoredRecord.notAppended(), db)),
                ("one line", try Self.plan(StoredRecord.filter(key: 7), db)),
            ]
            for (what, plan) in requests {
                #expect(Self.usesIndexes(plan), "\(what): \(plan)")
            }
        }
    }

    /// bdocker-acct's filters (the questions qacct asks): the export's and job view's statement
    /// and the summary's each find their rows through the filter's own index.
    @Test func auditorFiltersUseTheirIndexes() throws {
        let db = try BDockerDatabase.open(path: dir.file("filters.sqlite"), role: "accounting", migrationsDir: nil)
        let filters: [(AccountingFilter, String)] = [
            (AccountingFilter(owner: "ann"), "records_owner"),
            (AccountingFilter(group: "staff"), "records_group"),
            (AccountingFilter(queue: "all.q"), "records_queue"),
            (AccountingFilter(host: "NODE1"), "records_host"),
            (AccountingFilter(project: "projA"), "records_project"),
            (AccountingFilter(account: "proj1"), "records_account"),
            (AccountingFilter(job: 42), "records_job"),
            (AccountingFilter(job: 42, tasks: TaskRange(first: 2, last: 8, step: 2)), "records_job"),
            (AccountingFilter(since: 1_700_000_000), "records_start"),
            (AccountingFilter(since: 1_700_000_000, until: 1_700_086_400), "records_start"),
            (AccountingFilter(until: 1_700_086_400), "records_start"),
        ]
        try db.pool.read { db in
            for (filter, index) in filters {
                for (sql, arguments) in [AccountingReader.linesSQL(filter), AccountingReader.summarySQL([.owner, .queue], filter),
                                         AccountingReader.summarySQL([], filter)] {
                    let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
                    #expect(Self.usesIndexes(plan), "\(filter): \(plan)")
                    #expect(plan.contains { $0.contains(index) }, "\(filter): \(plan)")
                }
            }
        }
    }
}
