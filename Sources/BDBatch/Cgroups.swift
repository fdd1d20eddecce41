import BDCore
import Foundation

/// cgroup v1 under `[batch] cgroups_dir`: one directory per mounted hierarchy. bdocker creates
/// job trees in the hierarchies its accounting reads (cpu, cpuacct, memory — `cpu,cpuacct`
/// may be one mount or two) and removes job trees from every hierarchy, because the Docker
/// engine creates the containers' parent cgroups in all of them and leaves them behind.
public struct CgroupHierarchies: Sendable {
    public let root: String
    /// Directories to create job trees in, each once even if several names point at it.
    public let accounting: [String]
    /// Directory holding `cpuacct.usage`.
    public let cpuacct: String
    /// Directory holding `memory.usage_in_bytes`.
    public let memory: String
    /// The counter files the monitor reads, kept open between ticks.
    public let counters = CounterFiles()

    public init(root: String) throws(BDockerError) {
        self.root = root
        func find(_ controller: String, file: String) throws(BDockerError) -> String {
            let names = [controller, "cpu,cpuacct", "cpuacct,cpu"]
            for name in names {
                let dir = root + "/" + name
                if FileManager.default.fileExists(atPath: dir + "/" + file) { return Self.real(dir) }
            }
            throw .internalFault("no cgroup v1 '\(controller)' hierarchy under \(root) (looked for \(names.map { "\(root)/\($0)/\(file)" }.joined(separator: ", "))); is [batch] cgroups_dir right?")
        }
        cpuacct = try find("cpuacct", file: "cpuacct.usage")
        memory = try find("memory", file: "memory.usage_in_bytes")
        let cpu = try find("cpu", file: "cpu.shares")
        var seen: [String] = []
        for dir in [cpu, cpuacct, memory] where !seen.contains(dir) { seen.append(dir) }
        accounting = seen
    }

    static func real(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    /// Every hierarchy mounted under `root` (a directory with a tasks or cgroup.procs file).
    public var all: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var dirs: [String] = []
        for name in names.sorted() {
            let dir = Self.real(root + "/" + name)
            let hasTasks = FileManager.default.fileExists(atPath: dir + "/tasks")
                || FileManager.default.fileExists(atPath: dir + "/cgroup.procs")
            if hasTasks && !dirs.contains(dir) { dirs.append(dir) }
        }
        return dirs
    }

    /// Creates `<path>` and `<path>/COMMON` in the accounting hierarchies.
    public func createJobTree(_ path: String) async throws(BDockerError) {
        let accounting = self.accounting
        try await BlockingWork.run { () throws(BDockerError) in
            for hierarchy in accounting {
                let common = hierarchy + path + "/COMMON"
                do {
                    try FileManager.default.createDirectory(atPath: common, withIntermediateDirectories: true)
                } catch {
                    throw .internalFault("cannot create cgroup \(common): \(error.localizedDescription)")
                }
            }
        }
    }

    /// Moves `pid` into `<path>/COMMON` in the accounting hierarchies; its children follow.
    public func addToCommon(_ path: String, pid: Int) async throws(BDockerError) {
        let accounting = self.accounting
        try await BlockingWork.run { () throws(BDockerError) in
            for hierarchy in accounting {
                try Self.write("\(pid)\n", to: hierarchy + path + "/COMMON/tasks")
            }
        }
    }

    /// Moves the process `pid` with all its threads into `<path>/COMMON` in the accounting
    /// hierarchies (`cgroup.procs`); blocking, for callers already on `BlockingWork`.
    public func addProcessToCommon(_ path: String, pid: Int) throws(BDockerError) {
        for hierarchy in accounting {
            try Self.write("\(pid)\n", to: hierarchy + path + "/COMMON/cgroup.procs")
        }
    }

    public func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: cpuacct + path)
    }

    /// One reading of the tree and of COMMON. Nil when the tree or its COMMON is gone or
    /// unreadable: a clean removes COMMON first, and a tick that read the tree then but took
    /// COMMON as 0 would charge all the job's own CPU to its containers.
    public func sample(_ path: String) -> CgroupReading? {
        guard let cpuTree = counters.read(cpuacct + path + "/cpuacct.usage", verifyLinked: true),
              let memTree = counters.read(memory + path + "/memory.usage_in_bytes"),
              let cpuCommon = counters.read(cpuacct + path + "/COMMON/cpuacct.usage", verifyLinked: true),
              let memCommon = counters.read(memory + path + "/COMMON/memory.usage_in_bytes", verifyLinked: true)
        else { return nil }
        return CgroupReading(
            cpuNanosTree: cpuTree,
            cpuNanosCommon: cpuCommon,
            memBytesTree: memTree,
            memBytesCommon: memCommon,
            maxMemBytesTree: counters.read(memory + path + "/memory.max_usage_in_bytes") ?? memTree)
    }

    /// User and system time of the tree and of its COMMON (`cpuacct.stat`, in USER_HZ ticks;
    /// charged to every ancestor, so containers already removed still count). Nil when either
    /// file is missing or unreadable.
    public func cpuTimes(_ path: String) -> CPUTimes? {
        func read(_ file: String) -> (user: Int64, system: Int64)? {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
            return CPUTimes.parseStat(text)
        }
        guard let tree = read(cpuacct + path + "/cpuacct.stat"), let common = read(cpuacct + path + "/COMMON/cpuacct.stat") else {
            return nil
        }
        return CPUTimes(userTree: tree.user, systemTree: tree.system, userCommon: common.user, systemCommon: common.system)
    }

    /// Every pid in the tree (all hierarchies' views are the same processes; read cpuacct's).
    public func pids(_ path: String) -> [Int] {
        Self.subtree(cpuacct + path).flatMap { Self.tasks($0) }
    }

    /// Moves what is left in the tree to the tree's parent and removes the tree, deepest first
    /// (so COMMON goes before the job directory), in every hierarchy where it exists. A
    /// directory a task is still leaving is retried for up to ~4.8 s; the file work runs on
    /// `BlockingWork`'s threads and the waits between tries are `Task.sleep`, so no thread is
    /// held meanwhile.
    public func removeJobTree(_ path: String) async throws(BDockerError) {
        for hierarchy in [cpuacct, memory] { counters.forget(under: hierarchy + path + "/") }
        let parentPath = (path as NSString).deletingLastPathComponent
        let trees = try await BlockingWork.run { [self] () throws(BDockerError) in
            all.map { hierarchy in (hierarchy, Self.subtree(hierarchy + path).sorted { $0.count > $1.count }) }
        }
        var failures: [String] = []
        for (hierarchy, dirs) in trees {
            let parentTasks = hierarchy + parentPath + "/tasks"
            for dir in dirs {
                var failure: String?
                for attempt in 0..<50 {
                    if attempt > 0 {
                        // A task may still be leaving; give it a moment.
                        try? await Task.sleep(for: .milliseconds(20 * min(attempt, 5)))
                    }
                    failure = try await BlockingWork.run { () throws(BDockerError) -> String? in
                        for pid in Self.tasks(dir) { try? Self.write("\(pid)\n", to: parentTasks) }
                        // errno is per thread: read it here, on the thread that called rmdir.
                        return rmdir(dir) == 0 || errno == ENOENT ? nil : String(cString: strerror(errno))
                    }
                    if failure == nil { break }
                }
                if let failure { failures.append("\(dir): \(failure)") }
            }
        }
        if !failures.isEmpty {
            throw .internalFault("cannot remove cgroup(s) \(failures.joined(separator: "; "))")
        }
    }

    // MARK: file access

    static func subtree(_ top: String) -> [String] {
        guard FileManager.default.fileExists(atPath: top) else { return [] }
        var result = [top]
        let children = (try? FileManager.default.contentsOfDirectory(atPath: top)) ?? []
        for child in children {
            var isDir: ObjCBool = false
            let path = top + "/" + child
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                result += subtree(path)
            }
        }
        return result
    }

    static func tasks(_ dir: String) -> [Int] {
        guard let text = try? String(contentsOfFile: dir + "/tasks", encoding: .utf8) else { return [] }
        return parseTasks(text)
    }

    /// The pids of a `tasks` file, one a line; anything that is not a pid from 1 to
    /// `Int32.max` is skipped, so every pid returned fits `pid_t`.
    static func parseTasks(_ text: String) -> [Int] {
        text.split(separator: "\n").compactMap { line in Int32(line).flatMap { $0 > 0 ? Int($0) : nil } }
    }

    /// The largest counter reading kept (2^62 − 1; ~146 years of CPU nanoseconds, 4 EiB):
    /// larger readings are clamped to it, so that sums and differences of two readings (usage
    /// arithmetic in JobUsage and the monitor) cannot overflow `Int64`.
    static let largestCounter: Int64 = (1 << 62) - 1

    /// A cgroup counter file's number: a non-negative whole number, clamped to
    /// `largestCounter`; nil for anything else (a negative number, text, empty).
    static func parseCounter(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { CounterFiles.parseCounter($0) }
    }

    static func write(_ text: String, to path: String) throws(BDockerError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .internalFault("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Foundation.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw .internalFault("cannot write \(text.trimmingCharacters(in: .whitespacesAndNewlines)) to \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// What `/proc/<pid>` says of a process, parsed.
enum ProcessFacts {
    /// Real and effective uid from `/proc/<pid>/status`'s `Uid:` line.
    static func uids(_ status: String) -> (real: Int, effective: Int)? {
        for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
            let ids = line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }
            guard ids.count >= 2 else { return nil }
            return (ids[0], ids[1])
        }
        return nil
    }

    /// The cgroup v1 path of `controller` in `/proc/<pid>/cgroup` (`N:cpu,cpuacct:/path`).
    static func cgroup(_ membership: String, controller: String) -> String? {
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1].split(separator: ",").contains(Substring(controller)) else { continue }
            return String(parts[2])
        }
        return nil
    }
}

/// User and system CPU ticks of a job tree and of its COMMON (the job's own processes).
public struct CPUTimes: Sendable, Equatable {
    public var userTree: Int64
    public var systemTree: Int64
    public var userCommon: Int64
    public var systemCommon: Int64

    public init(userTree: Int64, systemTree: Int64, userCommon: Int64, systemCommon: Int64) {
        self.userTree = userTree
        self.systemTree = systemTree
        self.userCommon = userCommon
        self.systemCommon = systemCommon
    }

    /// "user 123\nsystem 45\n": both lines required, each a non-negative count.
    static func parseStat(_ text: String) -> (user: Int64, system: Int64)? {
        var user: Int64?, system: Int64?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Int64(parts[1]), value >= 0 else { continue }
            if parts[0] == "user" { user = value } else if parts[0] == "system" { system = value }
        }
        guard let user, let system else { return nil }
        return (user, system)
    }

    /// The system share of the counted CPU: of the containers (tree minus COMMON) with
    /// `onlyDocker`, else of the whole tree; 0 when there are no ticks to tell.
    public func systemShare(onlyDocker: Bool) -> Double {
        let user = Double(userTree) - (onlyDocker ? Double(userCommon) : 0)
        let system = Double(systemTree) - (onlyDocker ? Double(systemCommon) : 0)
        guard user >= 0, system >= 0, user + system > 0 else { return 0 }
        return system / (user + system)
    }
}

/// Cumulative counters of one job tree at one moment.
public struct CgroupReading: Sendable, Equatable {
    public var cpuNanosTree: Int64
    public var cpuNanosCommon: Int64
    public var memBytesTree: Int64
    public var memBytesCommon: Int64
    public var maxMemBytesTree: Int64

    public init(cpuNanosTree: Int64, cpuNanosCommon: Int64, memBytesTree: Int64, memBytesCommon: Int64, maxMemBytesTree: Int64) {
        self.cpuNanosTree = cpuNanosTree
        self.cpuNanosCommon = cpuNanosCommon
        self.memBytesTree = memBytesTree
        self.memBytesCommon = memBytesCommon
        self.maxMemBytesTree = maxMemBytesTree
    }
}
