import BDAPI
import BDClient
import BDConfig
import BDCore
import BDCredentials
import BDStore
import BDWorkingNode
import Foundation
import Hummingbird
import Logging
import Testing

/// Paths of the repository these tests were built from.
public enum Repo {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    public static func path(_ relative: String) -> String { root + "/" + relative }

    /// Where the built executables are: next to the test bundle, or `$BDOCKER_BIN_DIR`.
    public static var binDir: String {
        if let dir = ProcessInfo.processInfo.environment["BDOCKER_BIN_DIR"] { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("bdockerd").path) { return url.path }
        }
        return root + "/.build/debug"
    }
}

/// A directory under /tmp removed when the test ends.
public final class TempDir: @unchecked Sendable {
    // @unchecked: immutable after init.
    public let path: String

    public init(_ prefix: String = "bdocker-test") {
        let template = NSTemporaryDirectory() + "\(prefix)-XXXXXX"
        var bytes = Array(template.utf8CString)
        path = bytes.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func write(_ name: String, _ text: String, mode: Int = 0o644) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        return p
    }

    public func mkdir(_ name: String, mode: Int = 0o755) -> String {
        let p = file(name)
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        return p
    }
}

/// A working-node configuration built from the shipped sample, pointing at a temp dir.
public final class TestConfig: @unchecked Sendable {
    // @unchecked: immutable after init.
    public let dir: TempDir
    /// A cgroup parent of this config's own, removed with it.
    public let parentCgroup = "/bdocker-test-\(Int.random(in: 100_000...999_999))"
    public let configPath: String
    public let adminToken: String
    public let settings: Settings
    /// The working daemon's unix socket.
    public let socketPath: String
    public var endpoint: String { "unix://" + socketPath }

    public init(role: Role = .working, replacing extra: [String: String] = [:]) throws {
        dir = TempDir("bdocker-cfg")
        adminToken = TokenSecret.generate()
        let tokenFile = dir.write("admin_token", adminToken + "\n", mode: 0o600)
        let sample = role == .working ? "etc/configure_bdocker.cfg" : "etc/configure_bdocker_accounting.cfg"
        var text = try String(contentsOfFile: Repo.path(sample), encoding: .utf8)
        // Test users connect to the socket below: the directories on the way must let them.
        chmod(dir.path, 0o755)
        socketPath = dir.file("run/bdockerd.sock")
        var replacements = [
            "socket = /run/bdocker/bdockerd.sock": "socket = \(socketPath)",
            "bind_staging = /run/bdocker/binds": "bind_staging = \(dir.file("binds"))",
            "database = /var/lib/bdocker/\(role.rawValue).sqlite": "database = \(dir.file("state/db.sqlite"))",
            "admin_token_file = /etc/bdocker/admin_token": "admin_token_file = \(tokenFile)",
            "parent_cgroup = /bdocker": "parent_cgroup = \(parentCgroup)",
            "monitoring_time = 10": "monitoring_time = 1",
        ]
        for (k, v) in extra { replacements[k] = v }
        for (from, to) in replacements { text = text.replacingOccurrences(of: from, with: to) }
        configPath = dir.write("bdocker.cfg", text)
        settings = try SettingsLoader.load(path: configPath)
    }

    /// An accounting daemon's config listening on 127.0.0.1:`port`, appending to `accountingFile`.
    public static func accounting(port: Int, accountingFile: String, replacing extra: [String: String] = [:]) throws -> TestConfig {
        try TestConfig(role: .accounting, replacing: extra.merging([
            "port = 5001": "port = \(port)",
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(accountingFile)",
        ]) { $1 })
    }

    deinit {
        // Clean moves a job's leftover processes (a test's pretend shepherd) into this parent:
        // hand them back to the root so the parent can go.
        for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            let dir = "/sys/fs/cgroup/\(hierarchy)\(parentCgroup)"
            let tasks = (try? String(contentsOfFile: dir + "/tasks", encoding: .utf8)) ?? ""
            for pid in tasks.split(separator: "\n") {
                try? "\(pid)\n".write(toFile: "/sys/fs/cgroup/\(hierarchy)/tasks", atomically: false, encoding: .utf8)
            }
            rmdir(dir)
        }
    }
}

/// A daemon running in this process (on an ephemeral TCP port, or on a unix socket), stopped
/// by `stop()`. It listens exactly as bdockerd does (`Listener`), peer checks included.
public final class RunningDaemon: @unchecked Sendable {
    // @unchecked: fields are set once before the daemon is handed out.
    public let endpoint: String
    public let task: Task<Void, Error>

    private init(endpoint: String, task: Task<Void, Error>) {
        self.endpoint = endpoint
        self.task = task
    }

    /// On `socket` when given (the working role's way), else on 127.0.0.1 and a free port.
    /// `tls`: the listener speaks TLS (the endpoint is then still `127.0.0.1:port`).
    public static func start(router: Router<BDContext>, socket: String? = nil, idleTimeout: Duration = .seconds(30),
                      maxConnectionsPerUser: Int = 64, tls: ServerTLS? = nil,
                      logger: Logger = Logger(label: "test")) async throws -> RunningDaemon {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let address: Listener.Address = socket.map { .unix(path: $0) } ?? .tcp(host: "127.0.0.1", port: 0)
        let app = try Listener(address, idleTimeout: idleTimeout, maxConnectionsPerUser: maxConnectionsPerUser, tls: tls)
            .application(router: router, logger: logger) { port in continuation.yield(port) }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else { throw BDockerError.internalFault("server did not start") }
        if let socket { return RunningDaemon(endpoint: "unix://" + socket, task: task) }
        guard port > 0 else { throw BDockerError.internalFault("server did not start") }
        return RunningDaemon(endpoint: "127.0.0.1:\(port)", task: task)
    }

    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Runs an executable and captures its output.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs an executable on a thread of its own (never blocking the concurrency pool, which the
/// in-process daemon needs to answer the command) and captures its output.
/// `input`, when given, is the child's stdin (written on a thread of its own, then closed);
/// otherwise stdin is /dev/null.
public func runCommand(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                directory: String? = nil, input: Data? = nil) async throws -> CommandResult {
    let process = Process()
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let stdin = input.map { _ in Pipe() }
    process.standardInput = stdin ?? FileHandle.nullDevice
    try process.run()
    if let stdin, let input {
        Thread {
            // A child that exits without reading it all makes the write fail: that is its business.
            signal(SIGPIPE, SIG_IGN)
            try? stdin.fileHandleForWriting.write(contentsOf: input)
            try? stdin.fileHandleForWriting.close()
        }.start()
    }
    return await withCheckedContinuation { continuation in
        Thread {
            // Read both pipes before waiting so a chatty child cannot block on a full pipe.
            let errData = LockedData()
            let errReader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
            errReader.start()
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            while !errData.isSet { usleep(1000) }
            continuation.resume(returning: CommandResult(status: process.terminationStatus,
                                                         stdout: String(decoding: outData, as: UTF8.self),
                                                         stderr: String(decoding: errData.value, as: UTF8.self)))
        }.start()
    }
}

/// A value handed from one thread to another.
public final class LockedData: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var data: Data?
    public func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    public var value: Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

/// A real non-root user made by tools/test-env.sh (`bdtest1`, `bdtest2`).
public func testUser(_ index: Int = 0) throws -> PasswdEntry {
    let name = Requirement.testUserNames[index]
    guard let entry = PasswdEntry.lookup(name: name) else {
        throw BDockerError.internalFault("test user \(name) does not exist: run tools/test-env.sh up (as root) first")
    }
    return entry
}

/// Starts the real `bdockerd --config` of `config` and waits until it answers on its socket.
public func startBdockerd(_ config: TestConfig) async throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Repo.binDir + "/bdockerd")
    process.arguments = ["--config", config.configPath]
    process.standardError = FileHandle.nullDevice
    try process.run()
    let client = DaemonClient(endpoint: config.endpoint)
    for _ in 0..<100 {
        if (try? await client.call(.GET, "/status", as: StatusResult.self)) != nil { return process }
        try await Task.sleep(for: .milliseconds(100))
    }
    process.terminate()
    throw BDockerError.unavailable("bdockerd did not start on \(config.endpoint)")
}

/// A port on 127.0.0.1 free a moment ago (the kernel's pick), for a daemon to listen on.
public func freeLoopbackPort() throws -> Int {
    let socket = try loopbackSocket(listening: false)
    close(socket.fd)
    return socket.port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picked, listening when asked; the
/// caller closes it (closed at once, the port is a free one to hand to a daemon).
public func loopbackSocket(listening: Bool) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard fd >= 0, bound, !listening || listen(fd, 1) == 0 else {
        close(fd)
        throw BDockerError.internalFault("no loopback socket: \(String(cString: strerror(errno)))")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// The error `body` throws, or nil when it succeeds.
public func failure<T>(of body: () async throws(BDockerError) -> T) async -> BDockerError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes, and says whether it held.
/// For states a test waits for (a log line, a sample, a file in a container) instead of a fixed
/// sleep, which a busy machine outlasts.
public func eventually(within timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

extension Caller {
    /// Root on the unix socket, as the prolog and epilog call.
    public static let root = Caller.local(uid: 0, pid: 1)
}

/// In-process calls as root: what the prolog and epilog do, for tests that drive the node
/// directly rather than through a socket.
extension WorkingNode {
    public func configure(_ request: ConfigureRequest) async throws(BDockerError) -> (token: String, job: JobRecord) {
        try await configure(request, caller: .root)
    }

    public func clean(_ request: CleanRequest) async throws(BDockerError) -> (job: JobRecord, accounted: Bool) {
        try await clean(request, caller: .root)
    }

    public func createContainer(_ request: RunRequest) async throws(BDockerError) -> PreparedRun {
        try await createContainer(request, caller: .root)
    }
}

/// A pipe's output collected as it comes, on a thread of its own (never the cooperative pool,
/// which a daemon running in the test process needs): a test can wait for some of it (`text`)
/// and still have all of it once the writers are gone (`all()`).
public final class PipeOutput: @unchecked Sendable {
    // @unchecked: `data`, `done` and `waiters` only under `lock`.
    private let lock = NSLock()
    private var data = Data()
    private var done = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                lock.lock()
                if chunk.isEmpty {
                    done = true
                    let ready = waiters
                    waiters = []
                    lock.unlock()
                    ready.forEach { $0.resume() }
                    return
                }
                data.append(chunk)
                lock.unlock()
            }
        }
    }

    /// What has come so far.
    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Everything, once the pipe's writers have all closed it.
    public func all() async -> String {
        await withCheckedContinuation { continuation in
            lock.lock()
            if done {
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
        return text
    }
}

/// The real `bdockerd --config` of `config` in its own process, its stderr in a log file the
/// test reads (`line`), for tests that signal it. `stop()` ends it (SIGTERM) and waits.
public final class LoggedBdockerd: @unchecked Sendable {
    // @unchecked: immutable after init.
    public let process: Process
    public let log: String

    public init(_ config: TestConfig) throws {
        log = config.dir.write("bdockerd.log", "")
        process = Process()
        process.executableURL = URL(fileURLWithPath: Repo.binDir + "/bdockerd")
        process.arguments = ["--config", config.configPath]
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
    }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// The `occurrence`-th line of the log holding `text` (the daemon's own word that it did
    /// something), once written; 60 s only guard against a hang.
    public func line(containing text: String, occurrence: Int = 1) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains(text) }
            if lines.count >= occurrence { return String(lines[occurrence - 1]) }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BDockerError.internalFault("bdockerd never logged '\(text)' \(occurrence) time(s): \(try String(contentsOfFile: log, encoding: .utf8))")
    }

    public func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}
