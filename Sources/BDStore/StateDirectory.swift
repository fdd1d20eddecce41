import BDCore
import Foundation

/// The directory holding a daemon's database: tokens, jobs, users and accounting records are
/// the daemon user's alone (root's in production). A missing directory is made 0700; one owned
/// by anybody else, or that group or others can write, is refused (they could swap the
/// database or plant its -wal file).
public enum StateDirectory {
    public static func check(forDatabase database: String) throws(BDockerError) {
        let dir = (database as NSString).deletingLastPathComponent
        guard !dir.isEmpty else { return }
        if !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw .internalFault("cannot create the state directory \(dir): \(error.localizedDescription)")
            }
        }
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .internalFault("the state directory \(dir) ([server] database = \(database)) is not a directory")
        }
        // Owned by the daemon's own user (root in production) and writable by nobody else.
        let owner = geteuid()
        let mode = String(st.st_mode & 0o7777, radix: 8)
        guard st.st_uid == owner, st.st_mode & 0o022 == 0 else {
            throw .forbidden("the state directory \(dir) ([server] database = \(database)) is owned by uid \(st.st_uid) "
                + "with mode \(mode): others could replace the database. Make it the daemon user's (uid \(owner)) "
                + "with mode 0700 (chown \(owner == 0 ? "root:root" : String(owner)) \(dir); chmod 0700 \(dir)).")
        }
    }

    /// Creates the database file 0600 if it is new and takes group and other access away from
    /// it and its -wal and -shm (SQLite gives those the database's mode).
    public static func restrict(database path: String) throws(BDockerError) {
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw .internalFault("cannot open the database \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        fchmod(fd, 0o600)
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = open(path + suffix, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if side >= 0 {
                fchmod(side, 0o600)
                close(side)
            }
        }
    }
}
