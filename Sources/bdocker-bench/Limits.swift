import Foundation

/// The machine's own limits, measured the way the daemon would be measured, so each figure can
/// be read as a ratio (machines here are noisy; the ratio is what matters).
enum Limits {
    /// Appends of one accounting-line-sized record followed by fdatasync, per second, in `dir`
    /// (the filesystem the accounting file and database live on).
    static func appendSyncPerSecond(dir: String, count: Int = 500) throws -> Double {
        let path = dir + "/bdocker-bench-fsync-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd); unlink(path) }
        let line = Array(repeating: UInt8(ascii: "x"), count: 299) + [UInt8(ascii: "\n")]
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<count {
                _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                fdatasync(fd)
            }
        }
        let (s, atto) = elapsed.components
        return Double(count) / (Double(s) + Double(atto) / 1e18)
    }

    /// One pass over `files` with descriptors kept open and `pread` into one buffer, parsing
    /// the leading integer from bytes: the least a monitor tick reading these files can cost.
    /// (Scaled up when the descriptor limit let only some of them be opened.)
    static func preadPass(files: [String], passes: Int = 20) -> Double {
        let fds = files.map { open($0, O_RDONLY | O_CLOEXEC) }
        defer { for fd in fds where fd >= 0 { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 64)
        var sink: Int64 = 0
        let clock = ContinuousClock()
        var times: [Duration] = []
        for _ in 0..<passes {
            times.append(clock.measure {
                for fd in fds where fd >= 0 {
                    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
                    var value: Int64 = 0
                    for i in 0..<max(0, n) where (48...57).contains(buffer[i]) { value = value &* 10 &+ Int64(buffer[i] - 48) }
                    sink &+= value
                }
            })
        }
        if sink == -1 { print("") }  // keeps the reads from being optimised away
        // Files beyond the descriptor limit could not be opened: scale to all of them.
        let opened = fds.filter { $0 >= 0 }.count
        return opened == 0 ? 0 : p50(times) * Double(files.count) / Double(opened)
    }
}
