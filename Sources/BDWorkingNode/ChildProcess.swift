import BDCore
import CBDSystem
import Foundation
import NIOPosix

/// A helper process (the job user's tar) started with posix_spawn: a clean signal mask and
/// default dispositions (the daemon blocks and ignores signals its children must not inherit),
/// its own process group (killed whole on timeout), and pipes for stdin/stdout. Its stderr is
/// read while it runs, so it can never block on a full pipe.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `pid` and the descriptors are fixed after init; `errors` has its own lock.
    let pid: pid_t
    /// Write end of the child's stdin, or -1.
    private(set) var stdin: Int32
    /// Read end of the child's stdout, or -1.
    private(set) var stdout: Int32
    private let errors: StderrCollector

    /// Threads for blocking reads, writes and waits of copies: not the cooperative pool, and
    /// not NIO's event loops.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    init(_ path: String, _ arguments: [String], environment: [String: String], pipeStdin: Bool, pipeStdout: Bool) throws(BDockerError) {
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        func closeAll() { for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) } }
        guard (!pipeStdin || bd_pipe_cloexec(&inPipe) == 0), (!pipeStdout || bd_pipe_cloexec(&outPipe) == 0),
              bd_pipe_cloexec(&errPipe) == 0 else {
            closeAll()
            throw .internalFault("cannot create pipes: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if pipeStdin { posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0) } else { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
        if pipeStdout { posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1) } else { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        bd_spawn_add_chdir(&actions, "/")

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        for fd in [inPipe[0], outPipe[1], errPipe[1]] where fd >= 0 { close(fd) }
        guard rc == 0 else {
            for fd in [inPipe[1], outPipe[0], errPipe[0]] where fd >= 0 { close(fd) }
            throw .internalFault("cannot run \(path): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdin = inPipe[1]
        stdout = outPipe[0]
        errors = StderrCollector(fd: errPipe[0])
    }

    deinit {
        closeStdin()
        if stdout >= 0 { close(stdout) }
    }

    func closeStdin() {
        if stdin >= 0 { close(stdin) }
        stdin = -1
    }

    /// Up to `count` bytes of stdout; empty at end of file.
    func read(upTo count: Int) async throws(BDockerError) -> [UInt8] {
        let fd = stdout
        return try await BDockerError.wrapping("reading from tar failed") {
            try await Self.pool.runIfActive {
                var buffer = [UInt8](repeating: 0, count: count)
                while true {
                    let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, count) }
                    if n >= 0 { return Array(buffer.prefix(n)) }
                    if errno != EINTR { throw BDockerError.internalFault("reading from tar failed: \(String(cString: strerror(errno)))") }
                }
            }
        }
    }

    /// Writes all of `bytes` to stdin; false when the child stopped reading (it exited).
    func write(_ bytes: [UInt8]) async -> Bool {
        let fd = stdin
        guard fd >= 0 else { return false }
        return (try? await Self.pool.runIfActive { () -> Bool in
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }) ?? false
    }

    /// Kills the whole process group (the child and anything it started).
    func kill() {
        _ = Foundation.kill(-pid, SIGKILL)
    }

    /// Waits for the exit and returns (status, stderr text). Exit status, or 128+signal.
    func wait() async -> (status: Int32, stderr: String) {
        let pid = self.pid
        let status = (try? await Self.pool.runIfActive { () -> Int32 in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 {
                if errno != EINTR { return -1 }
            }
            let signal = raw & 0x7f
            return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        }) ?? -1
        return (status, await errors.text())
    }

    /// Runs `body`, killing the child if it takes longer than `limit`.
    func bounded<T: Sendable>(by limit: Duration, _ body: () async throws(BDockerError) -> T) async throws(BDockerError) -> T {
        let watchdog = Task { [pid] in
            try await Task.sleep(for: limit)
            _ = Foundation.kill(-pid, SIGKILL)
        }
        defer { watchdog.cancel() }
        return try await body()
    }
}

/// Reads a child's stderr on a thread of its own until end of file, keeping the first 16 KiB.
final class StderrCollector: @unchecked Sendable {
    // @unchecked: `data` and `done` are guarded by `condition`.
    private let condition = NSCondition()
    private var data: [UInt8] = []
    private var done = false

    init(fd: Int32) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, 4096) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                condition.lock()
                if data.count < 16 << 10 { data += buffer.prefix(n) }
                condition.unlock()
            }
            close(fd)
            condition.lock()
            done = true
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }

    func text() async -> String {
        let bytes: [UInt8] = (try? await ChildProcess.pool.runIfActive { [self] in
            condition.lock()
            while !done { condition.wait() }
            defer { condition.unlock() }
            return data
        }) ?? []
        return String(decoding: bytes, as: UTF8.self)
    }
}
