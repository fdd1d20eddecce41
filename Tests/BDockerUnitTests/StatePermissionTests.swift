import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Testing

/// The daemons' state is root's alone: files 0600 in a directory nobody else may write.
@Suite("State permissions")
struct StatePermissionTests {
    @Test func databaseAndItsWALAreOwnerOnlyEvenUnderALaxUmask() async throws {
        let dir = TempDir("bdocker-state")
        let path = dir.file("working.sqlite")
        let old = umask(0o022)
        defer { umask(old) }
        let db = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        try await db.pool.write { try $0.execute(sql: "CREATE TABLE IF NOT EXISTS t (x)") }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            var st = stat()
            #expect(stat(file, &st) == 0 && st.st_mode & 0o077 == 0, "\(file) is \(String(st.st_mode & 0o777, radix: 8))")
        }
    }

    @Test func aStateDirectoryOthersCanWriteIsRefused() throws {
        let dir = TempDir("bdocker-state")
        chmod(dir.path, 0o777)
        #expect(throws: BDockerError.self) { try StateDirectory.check(forDatabase: dir.file("db.sqlite")) }
        chmod(dir.path, 0o700)
        #expect(throws: Never.self) { try StateDirectory.check(forDatabase: dir.file("db.sqlite")) }
        let fresh = dir.file("new/sub")
        try StateDirectory.check(forDatabase: fresh + "/db.sqlite")
        var st = stat()
        #expect(stat(fresh, &st) == 0 && st.st_mode & 0o777 == 0o700)
    }
}
