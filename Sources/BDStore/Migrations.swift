import BDCore
import Foundation
import GRDB

/// One numbered schema change, read from `migrations/<role>/NNNN_name.sql`.
public struct MigrationFile: Sendable, Equatable {
    /// The identifier GRDB records once applied: the file name without `.sql`.
    public var identifier: String
    public var number: Int
    public var sql: String
}

/// Finds and reads the migration files of one role.
///
/// Installed binaries cannot see SwiftPM resource bundles, so the files are looked up on disk,
/// first match wins: `[server] migrations_dir`, `$BDOCKER_MIGRATIONS_DIR`,
/// `<binary dir>/../share/bdocker/migrations` (where `tools/install.sh` puts them), then the
/// source tree this binary was built from (development and tests).
public enum MigrationSource {
    public static let environmentVariable = "BDOCKER_MIGRATIONS_DIR"

    public static func candidateDirectories(configured: String?,
                                            environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var dirs: [String] = []
        if let configured { return [configured] }
        if let env = environment[environmentVariable], !env.isEmpty { dirs.append(env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        dirs.append(exe.deletingLastPathComponent().appendingPathComponent("../share/bdocker/migrations").standardized.path)
        // Sources/BDStore/Migrations.swift -> <repo>/migrations
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        dirs.append(repo.appendingPathComponent("migrations").path)
        return dirs
    }

    /// The migrations of `role` ("working" or "accounting"), in order.
    public static func load(role: String, configured: String?) throws(BDockerError) -> (directory: String, files: [MigrationFile]) {
        let candidates = candidateDirectories(configured: configured)
        for base in candidates {
            let dir = (base as NSString).appendingPathComponent(role)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue {
                return (dir, try read(directory: dir))
            }
        }
        throw .internalFault("no migrations for role '\(role)' found; looked in "
            + candidates.map { "\($0)/\(role)" }.joined(separator: ", ")
            + " (set [server] migrations_dir or install them with tools/install.sh)")
    }

    public static func read(directory: String) throws(BDockerError) -> [MigrationFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .internalFault("cannot list migrations in \(directory): \(error.localizedDescription)")
        }
        var files: [MigrationFile] = []
        for name in names where name.hasSuffix(".sql") {
            let stem = String(name.dropLast(4))
            let digits = stem.prefix(while: \.isNumber)
            guard digits.count == 4, let number = Int(digits), stem.dropFirst(4).first == "_" else {
                throw .internalFault("migration file \(directory)/\(name) is not named NNNN_description.sql")
            }
            let path = (directory as NSString).appendingPathComponent(name)
            guard let sql = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .internalFault("cannot read migration file \(path)")
            }
            files.append(MigrationFile(identifier: stem, number: number, sql: sql))
        }
        files.sort { $0.number < $1.number }
        for (a, b) in zip(files, files.dropFirst()) where a.number == b.number {
            throw .internalFault("two migrations share number \(a.number) in \(directory): \(a.identifier), \(b.identifier)")
        }
        guard !files.isEmpty else { throw .internalFault("no migration files in \(directory)") }
        return files
    }

    static func migrator(_ files: [MigrationFile]) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for file in files {
            let sql = file.sql
            migrator.registerMigration(file.identifier) { db in try db.execute(sql: sql) }
        }
        return migrator
    }
}
