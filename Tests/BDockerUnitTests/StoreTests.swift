import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Testing

@Suite("Store")
struct StoreTests {
    let dir = TempDir("bdocker-store")

    var allWorkingMigrations: [String] {
        get throws { try MigrationSource.read(directory: Repo.path("migrations/working")).map(\.identifier) }
    }

    @Test func newFileGetsEveryMigrationAndWAL() throws {
        let db = try BDockerDatabase.open(path: dir.file("w.sqlite"), role: "working", migrationsDir: nil)
        #expect(db.appliedMigrations == (try allWorkingMigrations))
        #expect(!db.appliedMigrations.isEmpty)
        let (mode, fk) = try db.pool.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(mode == "wal")
        #expect(fk == 1)
        let tables = try db.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        #expect(Set(["jobs", "tokens", "containers"]).isSubset(of: Set(tables)))
    }

    @Test func accountingRoleHasItsOwnSchema() throws {
        let db = try BDockerDatabase.open(path: dir.file("a.sqlite"), role: "accounting", migrationsDir: nil)
        let tables = try db.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        #expect(tables.contains("records"))
        #expect(!tables.contains("tokens"))
    }

    @Test func reopeningIsIdempotentAndKeepsData() throws {
        let path = dir.file("w.sqlite")
        do {
            let db = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
            try db.pool.write { db in
                var job = JobRecord(batchJobID: "7", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/home/ann", spoolDir: nil)
                try job.insert(db)
            }
        }
        let again = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        #expect(again.appliedMigrations == (try allWorkingMigrations))
        #expect(try again.pool.read { try JobRecord.fetchCount($0) } == 1)
    }

    @Test func newerSchemaIsRefused() throws {
        let path = dir.file("w.sqlite")
        do {
            let db = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
            try db.pool.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('9999_from_the_future')") }
        }
        #expect {
            try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        } throws: { error in
            guard let e = error as? BDockerError else { return false }
            return e.message.contains("newer bdocker") && e.message.contains("9999_from_the_future") && e.message.contains(path)
        }
        let state = try #require(try BDockerDatabase.inspect(path: path, role: "working", migrationsDir: nil))
        #expect(state.unknown == ["9999_from_the_future"])
    }

    @Test func corruptFileIsRefusedAndLeftAlone() throws {
        let path = dir.write("w.sqlite", String(repeating: "this is not a database\n", count: 200))
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        } throws: { error in
            (error as? BDockerError)?.message.contains("corrupt or not an SQLite database") == true
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test func migrationFilesMustBeNumbered() throws {
        let mdir = dir.mkdir("m/working")
        dir.write("m/working/0001_a.sql", "CREATE TABLE a (x);")
        dir.write("m/working/two.sql", "CREATE TABLE b (x);")
        #expect(throws: BDockerError.self) { try MigrationSource.read(directory: mdir) }
    }

    @Test func configuredDirectoryIsUsed() throws {
        _ = dir.mkdir("m/working")
        dir.write("m/working/0001_only.sql", "CREATE TABLE only_this (x);")
        let db = try BDockerDatabase.open(path: dir.file("x.sqlite"), role: "working", migrationsDir: dir.file("m"))
        #expect(db.appliedMigrations == ["0001_only"])
    }

    @Test func liveJobKeysAreUnique() throws {
        let db = try BDockerDatabase.open(path: dir.file("w.sqlite"), role: "working", migrationsDir: nil)
        try db.pool.write { db in
            var a = JobRecord(batchJobID: "7", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/h", spoolDir: nil)
            try a.insert(db)
            var b = a
            b.id = nil
            #expect(throws: DatabaseError.self) { try b.insert(db) }
            // A cleaned job frees its key: batch systems reuse ids.
            a.state = .cleaned
            try a.update(db)
            try b.insert(db)
        }
    }
}
