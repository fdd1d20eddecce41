import BDConfig
import BDCore
import CBDSystem
import BDCredentials
import Foundation

/// Bind mounts the user cannot redirect. The engine resolves a bind source path again, as root
/// and following symlinks, on every start and every archive call; so it never sees the user's
/// path. Each source is opened component by component below HOME (or a `[credentials]
/// bind_roots` directory) without following a symlink, checked to be the user's, and that open
/// descriptor is bind-mounted (nosuid, nodev, private) on a root-only staging path, which is
/// all the engine gets. Swapping the user's path for a symlink afterwards changes nothing: the
/// mount holds the directory the user had.
public struct BindStager: Sendable {
    /// `/run/bdocker/binds`: one directory per container (its stage), one mount point per bind.
    public let root: String
    /// Where sources may come from besides HOME.
    public let bindRoots: [BindRoot]

    public init(root: String, bindRoots: [BindRoot] = []) {
        self.root = root
        self.bindRoots = bindRoots
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
    /// `job` fills in the bind roots' placeholders.
    public func stage(_ volumes: [Volume], for session: UserSession, job: BindRoot.Values) throws(BDockerError)
        -> (stage: String, binds: [String])? {
        guard !volumes.isEmpty else { return nil }
        try prepareRoot()
        let stage = TokenSecret.generate(bytes: 12)
        let dir = root + "/" + stage
        guard mkdir(dir, 0o700) == 0 else { throw .internalFault("cannot create the bind stage \(dir): \(Self.errnoText())") }
        var binds: [String] = []
        do throws(BDockerError) {
            for (n, volume) in volumes.enumerated() {
                let target = "\(dir)/\(n)"
                try mountPinned(volume, at: target, for: session, job: job)
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

    func mountPinned(_ volume: Volume, at target: String, for session: UserSession, job: BindRoot.Values) throws(BDockerError) {
        let pinned = try Self.openPinned(volume.host, session: session, roots: bindRoots, job: job)
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

    /// Where a source may come from for one job: HOME, or one bind root filled in.
    struct Area {
        enum Kind { case home, personal, shared }
        var kind: Kind
        /// The area as the user knows it: HOME as in passwd, a root filled in.
        var path: String
        /// The components a source path starts with when inside: as written, and as resolved
        /// (a client's current directory is a resolved path).
        var forms: [[String]]
        var root: BindRoot.Expanded?
    }

    /// Opens `path` (absolute) inside HOME or a bind root, one component at a time with
    /// bd_o_path()|O_NOFOLLOW below it: no symlink, every component owned by the job's user, and
    /// the end a directory or a regular file. The area's own base is opened as `openBase` says.
    /// Nothing is opened for a path outside every area, and below a directory that is not the
    /// user's a missing entry and somebody else's answer alike, so messages never tell whether
    /// a path the user cannot see exists.
    static func openPinned(_ path: String, session: UserSession, roots: [BindRoot],
                           job: BindRoot.Values) throws(BDockerError) -> (fd: Int32, isDirectory: Bool) {
        guard path.hasPrefix("/"), !path.contains("\0") else {
            throw .invalidInput("'\(path)' must be an absolute path inside your HOME")
        }
        let parts = words(path)
        guard !parts.contains("..") else { throw .invalidInput("'\(path)' may not contain '..'") }
        let areas = allowedAreas(for: session, roots: roots, job: job)
        guard let (area, below) = matchingArea(of: parts, in: areas) else {
            throw .forbidden(outsideMessage(path, session: session, areas: areas))
        }
        if area.kind == .shared && below.isEmpty {
            throw .forbidden("\(path) is the shared bind root \(area.path); bind a directory of yours inside it")
        }
        var (fd, walked) = try openBase(area, for: path, session: session)
        var st = stat()
        do throws(BDockerError) {
            guard fstat(fd, &st) == 0 else { throw .forbidden("cannot inspect \(walked): \(errnoText())") }
            for component in below {
                let parentIsUsers = Int(st.st_uid) == session.uid
                walked += "/" + component
                guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .invalidInput("\(path): \(walked) is not a directory") }
                // In a directory not the user's (a shared root), a missing entry and another's look the same.
                let hidden = BDockerError.forbidden("\(path): \(walked) does not exist or is not yours; only your own files may be mounted")
                let next = openat(fd, component, bd_o_path() | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else {
                    if !parentIsUsers { throw hidden }
                    if errno == ENOENT { throw .notFound("\(path): \(walked) does not exist") }
                    throw .forbidden("\(path): cannot open \(walked): \(errnoText())")
                }
                close(fd)
                fd = next
                guard fstat(fd, &st) == 0 else { throw .forbidden("cannot inspect \(walked): \(errnoText())") }
                if !parentIsUsers && Int(st.st_uid) != session.uid { throw hidden }
                if (st.st_mode & S_IFMT) == S_IFLNK {
                    throw .forbidden("\(path): \(walked) is a symbolic link; bind sources may not pass through links")
                }
                try checkOwner(st, walked, session)
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

    /// HOME first, then each root this job can fill in (a root needing a queue the job has not is left out).
    static func allowedAreas(for session: UserSession, roots: [BindRoot], job: BindRoot.Values) -> [Area] {
        var home = Area(kind: .home, path: session.home, forms: [words(session.home)], root: nil)
        if let real = AccessPolicy.realPath(session.home) { home.forms.append(words(real)) }
        var areas = [home]
        for root in roots {
            guard let expanded = root.expand(job) else { continue }
            var area = Area(kind: expanded.isPersonal ? .personal : .shared, path: expanded.path,
                            forms: [expanded.components], root: expanded)
            // Only for matching: what is opened is decided by `openTrusted`.
            if let real = AccessPolicy.realPath("/" + expanded.fixed.joined(separator: "/")) {
                area.forms.append(words(real) + expanded.personal)
            }
            areas.append(area)
        }
        return areas
    }

    /// The most specific area holding `parts` (HOME on a tie) and the components below it.
    static func matchingArea(of parts: [String], in areas: [Area]) -> (Area, [String])? {
        var best: (area: Area, length: Int)?
        for area in areas {
            for form in area.forms where parts.starts(with: form) && form.count > (best?.length ?? -1) {
                best = (area, form.count)
            }
        }
        return best.map { ($0.area, Array(parts.dropFirst($0.length))) }
    }

    static func outsideMessage(_ path: String, session: UserSession, areas: [Area]) -> String {
        let roots = areas.filter { $0.kind != .home }
        guard !roots.isEmpty else {
            return "\(path) is outside your HOME (\(session.home)); only paths inside it may be used"
        }
        let list = roots.map { $0.kind == .shared ? "your directories in \($0.path)" : $0.path }.joined(separator: ", ")
        return "\(path) is outside your HOME (\(session.home)) and the bind roots (\(list)); only paths inside them may be mounted"
    }

    /// Opens the area's own directory. HOME is opened as passwd names it and must be the
    /// user's. A root's fixed part is the admin's (`openTrusted`); its filled-in components
    /// are opened without following links and must be the user's or root's (a shared root's:
    /// root's), so nobody else can have made them.
    static func openBase(_ area: Area, for path: String, session: UserSession) throws(BDockerError) -> (fd: Int32, walked: String) {
        guard let root = area.root else {
            let fd = open(session.home, bd_o_path() | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw .forbidden("the job's HOME \(session.home) cannot be opened") }
            var st = stat()
            do throws(BDockerError) {
                guard fstat(fd, &st) == 0 else { throw .forbidden("cannot inspect \(session.home): \(errnoText())") }
                try checkOwner(st, session.home, session)
            } catch {
                close(fd)
                throw error
            }
            return (fd, session.home)
        }
        var fd: Int32
        do {
            fd = try openTrusted(root.fixed).fd
        } catch {
            // Why is for the admin: it may name paths the user cannot see.
            throw .unavailable("\(path): the bind root \(area.path) is not usable on this node; bdockerd --check-config tells the admin why")
        }
        var walked = "/" + root.fixed.joined(separator: "/")
        for component in root.personal {
            walked = (walked == "/" ? "" : walked) + "/" + component
            let next = openat(fd, component, bd_o_path() | O_NOFOLLOW | O_CLOEXEC)
            let missing = next < 0 && errno == ENOENT
            close(fd)
            fd = next
            var st = stat()
            let owner = fd >= 0 && fstat(fd, &st) == 0 ? Int(st.st_uid) : -1
            let ownerOK = owner == 0 || (area.kind == .personal && owner == session.uid)
            guard fd >= 0, ownerOK, (st.st_mode & S_IFMT) == S_IFDIR else {
                if fd >= 0 { close(fd) }
                if missing { throw .notFound("\(path): the bind root \(walked) does not exist") }
                let whose = area.kind == .personal ? "yours or root's" : "root's"
                throw .forbidden("\(path): the bind root \(walked) must be a directory of \(whose), not a symbolic link")
            }
        }
        return (fd, walked)
    }

    /// Opens the admin's part of a bind root (`/scratch`), from `/`. Links are followed, but
    /// only root's; every directory passed through must be root's and writable by root alone
    /// (or sticky, like /tmp), so nobody else can redirect the path; the end must be root's
    /// directory. Returns it opened (bd_o_path()) and as resolved. The reasons are for the
    /// admin (`--check-config`); a missing component is `notFound`, anything else `forbidden`.
    public static func openTrusted(_ components: [String]) throws(BDockerError) -> (fd: Int32, path: String) {
        var fds: [Int32] = []
        var names: [String] = []
        func resolved(_ extra: String? = nil) -> String { "/" + (names + (extra.map { [$0] } ?? [])).joined(separator: "/") }
        let top = open("/", bd_o_path() | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else { throw .forbidden("cannot open /: \(errnoText())") }
        fds.append(top)
        var pending = Array(components.reversed())  // a stack: a link's target goes on top
        var hops = 0
        var st = stat()
        do throws(BDockerError) {
            while let name = pending.popLast() {
                if name.isEmpty || name == "." { continue }
                if name == ".." {
                    if fds.count > 1 { close(fds.removeLast()); names.removeLast() }
                    continue
                }
                let here = resolved(name)
                guard fstat(fds[fds.count - 1], &st) == 0 else { throw .forbidden("cannot inspect \(resolved()): \(errnoText())") }
                if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
                    throw .forbidden("\(resolved()) is writable by group or others without the sticky bit, so they could replace \(here)")
                }
                let fd = openat(fds[fds.count - 1], name, bd_o_path() | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else {
                    if errno == ENOENT { throw .notFound("\(here) does not exist") }
                    throw .forbidden("cannot open \(here): \(errnoText())")
                }
                guard fstat(fd, &st) == 0 else { close(fd); throw .forbidden("cannot inspect \(here): \(errnoText())") }
                guard st.st_uid == 0 else { close(fd); throw .forbidden("\(here) is owned by uid \(st.st_uid), not root") }
                switch st.st_mode & S_IFMT {
                case S_IFLNK:
                    hops += 1
                    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                    let n = readlinkat(fd, "", &buffer, buffer.count - 1)
                    close(fd)
                    guard hops <= 40, n > 0 else { throw .forbidden("\(here): too many symbolic links, or an unreadable one") }
                    let target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if target.hasPrefix("/") {
                        while fds.count > 1 { close(fds.removeLast()) }
                        names.removeAll()
                    }
                    pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
                case S_IFDIR:
                    fds.append(fd)
                    names.append(name)
                default:
                    close(fd)
                    throw .forbidden("\(here) is not a directory")
                }
            }
        } catch {
            fds.forEach { close($0) }
            throw error
        }
        let last = fds.removeLast()
        fds.forEach { close($0) }
        return (last, resolved())
    }

    /// The fixed part of a configured root, checked as every bind will check it (`--check-config`):
    /// its resolved path, or why it cannot be used.
    public static func checkRoot(_ root: BindRoot) throws(BDockerError) -> String {
        let opened = try openTrusted(words(root.fixedPath))
        close(opened.fd)
        return opened.path
    }

    static func words(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    private static func checkOwner(_ st: stat, _ path: String, _ session: UserSession) throws(BDockerError) {
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
