import BDCore
import CBDSystem
import BDCredentials
import Foundation

/// Bind mounts the user cannot redirect. The engine resolves a bind source path again, as root
/// and following symlinks, on every start and every archive call; so it never sees the user's
/// path. Each source is opened component by component below HOME without following a symlink,
/// checked to be the user's, and that open descriptor is bind-mounted (nosuid, nodev, private)
/// on a root-only staging path, which is all the engine gets. Swapping the HOME path for a
/// symlink afterwards changes nothing: the mount holds the directory the user had.
public struct BindStager: Sendable {
    /// `/run/bdocker/binds`: one directory per container (its stage), one mount point per bind.
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// One `-v HOST:CONTAINER[:ro|:rw]`, checked for form.
    public struct Volume: Sendable, Equatable {
        public var host: String
        public var container: String
        public var readOnly: Bool

        public init(parsing volume: String) throws(BDockerError) {
            let parts = volume.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (2...3).contains(parts.count), !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .invalidInput("volume '\(volume)' must be HOST:CONTAINER or HOST:CONTAINER:ro")
            }
            if parts.count == 3, parts[2] != "ro", parts[2] != "rw" {
                throw .invalidInput("volume '\(volume)': mode must be ro or rw, not '\(parts[2])'")
            }
            guard parts[1].hasPrefix("/"), !parts[1].contains(",") else {
                throw .invalidInput("volume '\(volume)': the container path must be absolute")
            }
            host = parts[0]
            container = parts[1]
            readOnly = parts.count == 3 && parts[2] == "ro"
        }
    }

    /// Creates a new stage holding one pinned mount per volume and returns the stage's name and
    /// the engine's bind strings. On any failure nothing stays mounted.
    public func stage(_ volumes: [Volume], for session: UserSession) throws(BDockerError) -> (stage: String, binds: [String])? {
        guard !volumes.isEmpty else { return nil }
        try prepareRoot()
        let stage = TokenSecret.generate(bytes: 12)
        let dir = root + "/" + stage
        guard mkdir(dir, 0o700) == 0 else { throw .internalFault("cannot create the bind stage \(dir): \(Self.errnoText())") }
        var binds: [String] = []
        do throws(BDockerError) {
            for (n, volume) in volumes.enumerated() {
                let target = "\(dir)/\(n)"
                try mountPinned(volume, at: target, for: session)
                binds.append("\(target):\(volume.container):\(volume.readOnly ? "ro" : "rw"),rprivate")
            }
        } catch {
            release(stage: stage)
            throw error
        }
        return (stage, binds)
    }

    /// Unmounts and removes a stage; a missing one is fine.
    public func release(stage: String) {
        guard Self.isStageName(stage) else { return }
        let dir = root + "/" + stage
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            let target = dir + "/" + entry
            _ = umount2(target, Int32(MNT_DETACH))
            if rmdir(target) != 0 { unlink(target) }
        }
        rmdir(dir)
    }

    /// Removes every stage not in `keep` (at start: a crash must not leave mounts behind).
    /// Returns how many went.
    @discardableResult
    public func sweep(keeping keep: Set<String>) -> Int {
        var removed = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !keep.contains(entry) {
            release(stage: entry)
            removed += 1
        }
        return removed
    }

    // MARK: pinning

    func mountPinned(_ volume: Volume, at target: String, for session: UserSession) throws(BDockerError) {
        let pinned = try Self.openInsideHome(volume.host, session: session)
        defer { close(pinned.fd) }
        // The mount point must be of the source's kind: a directory, or a file for a file.
        if pinned.isDirectory {
            guard mkdir(target, 0o700) == 0 else { throw .internalFault("cannot create \(target): \(Self.errnoText())") }
        } else {
            let fd = open(target, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .internalFault("cannot create \(target): \(Self.errnoText())") }
            close(fd)
        }
        guard mount("/proc/self/fd/\(pinned.fd)", target, nil, UInt(MS_BIND), nil) == 0 else {
            throw .internalFault("cannot bind-mount \(volume.host): \(Self.errnoText())")
        }
        // Flags of a bind take a remount; then no propagation either way.
        var flags = UInt(MS_BIND) | UInt(MS_REMOUNT) | UInt(MS_NOSUID) | UInt(MS_NODEV)
        if volume.readOnly { flags |= UInt(MS_RDONLY) }
        guard mount(nil, target, nil, flags, nil) == 0, mount(nil, target, nil, UInt(MS_PRIVATE), nil) == 0 else {
            let text = Self.errnoText()
            _ = umount2(target, Int32(MNT_DETACH))
            throw .internalFault("cannot restrict the bind mount of \(volume.host): \(text)")
        }
    }

    /// Opens `path` (absolute, inside HOME) one component at a time with bd_o_path()|O_NOFOLLOW:
    /// no symlink anywhere, every component owned by the job's user, and the end a directory
    /// or a regular file. Messages never tell whether something outside HOME exists.
    static func openInsideHome(_ path: String, session: UserSession) throws(BDockerError) -> (fd: Int32, isDirectory: Bool) {
        let relative = try AccessPolicy.componentsInsideHome(path, home: session.home)
        var fd = open(session.home, bd_o_path() | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .forbidden("the job's HOME \(session.home) cannot be opened") }
        var st = stat()
        var walked = session.home
        do throws(BDockerError) {
            try checkOwner(fd, walked, session, &st)
            for component in relative {
                walked += "/" + component
                guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .invalidInput("\(path): \(walked) is not a directory") }
                let next = openat(fd, component, bd_o_path() | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else {
                    if errno == ENOENT { throw .notFound("\(path): \(walked) does not exist") }
                    throw .forbidden("\(path): cannot open \(walked): \(errnoText())")
                }
                close(fd)
                fd = next
                guard fstat(fd, &st) == 0 else { throw .forbidden("cannot inspect \(walked): \(errnoText())") }
                if (st.st_mode & S_IFMT) == S_IFLNK {
                    throw .forbidden("\(path): \(walked) is a symbolic link; bind sources may not pass through links")
                }
                try checkOwner(fd, walked, session, &st)
            }
            let kind = st.st_mode & S_IFMT
            guard kind == S_IFDIR || kind == S_IFREG else {
                throw .invalidInput("\(path) is neither a directory nor a regular file")
            }
            return (fd, kind == S_IFDIR)
        } catch {
            close(fd)
            throw error
        }
    }

    private static func checkOwner(_ fd: Int32, _ path: String, _ session: UserSession, _ st: inout stat) throws(BDockerError) {
        guard fstat(fd, &st) == 0 else { throw .forbidden("cannot inspect \(path): \(errnoText())") }
        guard Int(st.st_uid) == session.uid else {
            throw .forbidden("\(path) is not owned by \(session.user); only your own files may be mounted")
        }
    }

    /// The staging root: root's, mode 0700, never a link.
    func prepareRoot() throws(BDockerError) {
        let parent = (root as NSString).deletingLastPathComponent
        if mkdir(parent, 0o755) == 0 { chmod(parent, 0o755) }
        if mkdir(root, 0o700) == 0 { chmod(root, 0o700) }
        var st = stat()
        guard lstat(root, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw .internalFault("the bind staging directory \(root) must be a directory of root's with mode 0700")
        }
    }

    static func isStageName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
