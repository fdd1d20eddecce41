import BDClient
import BDCore
import BDStore
import Foundation
import GRDB

/// `bdocker-bench node`: the real `bdockerd` (beside this binary, or --bin) as a working node
/// over its unix socket, with N live jobs already in its database: configure p50, `ps` p50 for a
/// job without containers, and, as the limit, a no-op request (`GET /status`) to the same
/// server through the same client; the daemon's RSS idle and with the jobs.
enum NodeBench {
    struct Options {
        var sizes = [100, 1000, 10_000]
        var samples = 200
        var bin = ""
        var dir = "/var/tmp"
        var user = "bdtest1"
        /// The engine `ps` may ask (the test environment's).
        var docker = ProcessInfo.processInfo.environment["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock"
    }

    static func run(_ options: Options, results: inout [BenchResult]) async throws {
        guard let user = PasswdEntry.lookup(name: options.user) else {
            throw BDockerError.invalidInput("user \(options.user) does not exist (tools/test-env.sh up makes bdtest1)")
        }
        for n in options.sizes {
            let dir = try makeTempDir(in: options.dir)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try await measure(jobs: n, options: options, user: user, dir: dir, results: &results)
        }
    }

    static func measure(jobs n: Int, options: Options, user: PasswdEntry, dir: String, results: inout [BenchResult]) async throws {
        let config = try writeConfig(dir: dir, docker: options.docker)
        try await prefill(database: dir + "/state/working.sqlite", jobs: n, user: user)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: options.bin + "/bdockerd")
        daemon.arguments = ["--config", config]
        daemon.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try daemon.run()
        defer { daemon.terminate(); daemon.waitUntilExit() }
        let client = DaemonClient(endpoint: "unix://\(dir)/run/bdockerd.sock", timeoutSeconds: 60)
        try await waitUntilServing(client)
        let rssIdle = rss(pid: daemon.processIdentifier)
        let clock = ContinuousClock()

        var status: [Duration] = [], configure: [Duration] = [], ps: [Duration] = []
        for _ in 0..<options.samples {
            status.append(try await clock.measure { _ = try await client.raw(.GET, "/status") })
        }
        var tokens: [String] = []
        for i in 0..<options.samples {
            let request = ConfigureRequest(userCredentials: UserCredentials(
                user: user.name, uid: user.uid, gid: user.gid, home: user.home, job: JobInfo(id: "\(9_000_000 + i)")))
            var token = ""
            configure.append(try await clock.measure { token = try await client.call(.POST, "/configuration", body: request) })
            tokens.append(token)
        }
        for token in tokens {
            ps.append(try await clock.measure {
                let _: [ContainerRow] = try await client.call(.GET, "/ps", query: ["token": token])
            })
        }
        let rssJobs = rss(pid: daemon.processIdentifier)
        let limit = p50(status)
        results.append(BenchResult(name: "configure p50, \(n) live jobs", value: p50(configure) * 1000, unit: "ms",
                                   limit: limit * 1000, limitName: "no-op request"))
        results.append(BenchResult(name: "ps (no containers) p50, \(n) live jobs", value: p50(ps) * 1000, unit: "ms",
                                   limit: limit * 1000, limitName: "no-op request"))
        results.append(BenchResult(name: "daemon RSS idle, \(n) live jobs in the store", value: rssIdle / 1_048_576, unit: "MiB"))
        results.append(BenchResult(name: "daemon RSS after \(options.samples) configures and ps, \(n) live jobs",
                                   value: rssJobs / 1_048_576, unit: "MiB"))
    }

    /// A working node of its own: socket, database and staging in `dir`, no cgroups (configure's
    /// cost here is the daemon's, not the kernel's), no engine calls needed for `ps` when the
    /// store knows, the monitor idle.
    static func writeConfig(dir: String, docker: String) throws -> String {
        let sample = try String(contentsOfFile: BenchPaths.repo + "/etc/configure_bdocker.cfg", encoding: .utf8)
        let token = dir + "/admin_token"
        _ = FileManager.default.createFile(atPath: token, contents: Data((String(repeating: "ab", count: 32) + "\n").utf8),
                                       attributes: [.posixPermissions: 0o600])
        let text = sample
            .replacingOccurrences(of: "socket = /run/bdocker/bdockerd.sock", with: "socket = \(dir)/run/bdockerd.sock")
            .replacingOccurrences(of: "bind_staging = /run/bdocker/binds", with: "bind_staging = \(dir)/binds")
            .replacingOccurrences(of: "database = /var/lib/bdocker/working.sqlite", with: "database = \(dir)/state/working.sqlite")
            .replacingOccurrences(of: "admin_token_file = /etc/bdocker/admin_token", with: "admin_token_file = \(token)")
            .replacingOccurrences(of: "enable_cgroups = true", with: "enable_cgroups = false")
            .replacingOccurrences(of: "monitoring_time = 10", with: "monitoring_time = 3600")
            .replacingOccurrences(of: "logging = INFO", with: "logging = WARNING")
            .replacingOccurrences(of: "base_url = unix:///var/run/docker.sock", with: "base_url = \(docker)")
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try text.write(toFile: dir + "/w.cfg", atomically: true, encoding: .utf8)
        return dir + "/w.cfg"
    }

    /// N configured jobs, as configure would have left them (monitor state not live: the
    /// monitor's cost is measured by `bdocker-bench monitor`).
    static func prefill(database path: String, jobs n: Int, user: PasswdEntry) async throws {
        let database = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        try await database.pool.write { db in
            for i in 0..<n {
                var job = JobRecord(batchJobID: "\(i)", taskID: nil, user: user.name, uid: user.uid, gid: user.gid,
                                    home: user.home, spoolDir: nil)
                try job.insert(db)
            }
        }
        try database.pool.close()
    }
}

/// One figure of the suite, with the machine's limit for the same work where there is one.
struct BenchResult: Codable {
    var name: String
    var value: Double
    var unit: String
    var limit: Double?
    var limitName: String?

    enum CodingKeys: String, CodingKey {
        case name, value, unit, limit
        case limitName = "limit_name"
    }
}

enum BenchPaths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
}

func p50(_ durations: [Duration]) -> Double {
    let sorted = durations.sorted()
    guard !sorted.isEmpty else { return 0 }
    let (s, atto) = sorted[sorted.count / 2].components
    return Double(s) + Double(atto) / 1e18
}

/// Resident set size of a process, bytes (VmRSS).
func rss(pid: Int32) -> Double {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return kb * 1024
    }
    return 0
}

/// Waits (up to 10 s) until the daemon behind `client` answers `GET /status`.
func waitUntilServing(_ client: DaemonClient) async throws {
    // (A `where` clause would not stop the loop: it would keep asking after the answer.)
    for _ in 0..<500 {
        if (try? await client.raw(.GET, "/status").0) == 200 { return }
        try await Task.sleep(for: .milliseconds(20))
    }
}

func makeTempDir(in parent: String) throws -> String {
    var template = Array("\(parent)/bdocker-bench-XXXXXX".utf8CString)
    guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
        throw BDockerError.internalFault("mkdtemp in \(parent): \(String(cString: strerror(errno)))")
    }
    return dir
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat: the figure that
/// does not depend on what else the machine is doing.
func cpuSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    // Fields after "(comm)": state is 3rd, utime 14th, stime 15th of the whole line.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
