import BDCore
import Foundation
import GRDB

/// The daemon's one SQLite database: WAL (through `DatabasePool`), foreign keys on, a busy
/// timeout so concurrent writers wait instead of failing, and the role's migrations applied.
public struct BDockerDatabase: Sendable {
    public let path: String
    public let pool: DatabasePool
    /// Identifiers of the migrations applied, in order.
    public let appliedMigrations: [String]

    /// Opens (creating if new) and migrates. A file written by a newer bdocker, or a file that is
    /// not an SQLite database, is refused with a message naming it: never recreated.
    public static func open(path: String, role: String, migrationsDir: String?) throws(BDockerError) -> BDockerDatabase {
        let (_, files) = try MigrationSource.load(role: role, configured: migrationsDir)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw .internalFault("cannot create the database directory \(directory): \(error.localizedDescription)")
            }
        }
        try StateDirectory.restrict(database: path)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration())
        } catch {
            throw describe(error, path: path)
        }
        let migrator = MigrationSource.migrator(files)
        return try BDockerError.mapping({ describe($0, path: path) }) {
            let known = Set(files.map(\.identifier))
            let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
            let unknown = applied.subtracting(known)
            if !unknown.isEmpty {
                throw BDockerError.internalFault(
                    "database \(path) was written by a newer bdocker (it has migrations "
                    + unknown.sorted().joined(separator: ", ")
                    + " that this version does not know); refusing to use it. Install the newer bdocker or move the file aside.")
            }
            try migrator.migrate(pool)
            let done = try pool.read { db in try migrator.appliedMigrations(db) }
            return BDockerDatabase(path: path, pool: pool, appliedMigrations: done)
        }
    }

    /// `GET /ready`'s check: one durable write of the probe row. Nil when it took, else why not
    /// (a full disk, a read-only filesystem, a locked file past the busy timeout).
    public func probeWritable() async -> String? {
        do {
            try await pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO readiness_probe (id, probed_at) VALUES (1, ?)",
                               arguments: [Date().timeIntervalSince1970])
            }
            return nil
        } catch {
            return "writing to \(path) failed: \(error)"
        }
    }

    /// Applied and pending migrations of an existing file, without changing it (for
    /// `bdockerd --check-config`). Nil when the file does not exist yet.
    public static func inspect(path: String, role: String, migrationsDir: String?) throws(BDockerError)
        -> (applied: [String], pending: [String], unknown: [String])? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (_, files) = try MigrationSource.load(role: role, configured: migrationsDir)
        do {
            var config = configuration()
            config.readonly = true
            let queue = try DatabaseQueue(path: path, configuration: config)
            let migrator = MigrationSource.migrator(files)
            let applied = try queue.read { db in try migrator.appliedIdentifiers(db) }
            let ordered = files.map(\.identifier)
            return (ordered.filter(applied.contains), ordered.filter { !applied.contains($0) },
                    applied.subtracting(ordered).sorted())
        } catch {
            throw describe(error, path: path)
        }
    }

    public static func configuration() -> Configuration {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.label = "bdocker"
        return config
    }

    static func describe(_ error: Error, path: String) -> BDockerError {
        if let db = error as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                return .internalFault("database \(path) is corrupt or not an SQLite database (\(db.message ?? "\(db.resultCode)")); "
                    + "refusing to start. Restore it from a backup or move it aside; bdocker never recreates it by itself.",
                    cause: error)
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY:
                return .internalFault("cannot open database \(path): \(db.message ?? "\(db.resultCode)")", cause: error)
            default:
                return .internalFault("database \(path): \(db.message ?? "\(db)")", cause: error)
            }
        }
        return .internalFault("database \(path): \(error)", cause: error)
    }
}

/// One value per open database pool, shared by everything that uses that pool: in-memory
/// mirrors of the store (session and container caches) must be invalidated by every writer,
/// and two daemons' worth of objects on one pool (tests do this) must see one another's
/// writes. Pools are held weakly; a closed pool's value goes with it.
public final class PerPool<Value: AnyObject & Sendable>: @unchecked Sendable {
    private final class Weak {
        weak var pool: DatabasePool?
        init(_ pool: DatabasePool) { self.pool = pool }
    }

    private let lock = NSLock()
    private var entries: [(pool: Weak, value: Value)] = []
    private let make: @Sendable () -> Value

    public init(_ make: @escaping @Sendable () -> Value) { self.make = make }

    public func value(for pool: DatabasePool) -> Value {
        lock.withLock {
            entries.removeAll { $0.pool.pool == nil }
            if let found = entries.first(where: { $0.pool.pool === pool }) { return found.value }
            let value = make()
            entries.append((Weak(pool), value))
            return value
        }
    }
}
