import BDCore
import Foundation

/// Reads cgroup counter files the way a monitor tick over thousands of jobs needs to: each file
/// opened once and kept open, read with `pread` at offset 0 into a buffer on the stack, the
/// number parsed from the bytes. A file whose cgroup is gone (ENODEV/ENOENT) is closed and
/// forgotten; `forget(under:)` drops a removed tree's files. Kept-open descriptors do not stop
/// a cgroup v1 directory from being removed. At most `capacity` stay open (a share of the
/// descriptor limit); beyond that a file is opened, read and closed each time.
public final class CounterFiles: @unchecked Sendable {
    // @unchecked: `descriptors` is only touched under `lock`.
    private let lock = NSLock()
    private var descriptors: [String: Int32] = [:]
    public let capacity: Int

    public init(capacity: Int = CounterFiles.defaultCapacity()) {
        self.capacity = capacity
    }

    deinit {
        for fd in descriptors.values { close(fd) }
    }

    /// Half of what the soft descriptor limit leaves after 512 for everything else.
    public static func defaultCapacity() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let soft = Int(clamping: min(limit.rlim_cur, 1 << 20))  // RLIM_INFINITY is all ones
        return max(0, (soft - 512) / 2)
    }

    /// Descriptors held now (for tests and the benchmark).
    public var openCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return descriptors.count
    }

    /// The counter in `path`, or nil when the file cannot be read or holds no counter.
    /// `verifyLinked` also asks (fstat) whether a kept file is still linked: cgroupfs answers
    /// ENODEV once a cgroup is removed, but an ordinary file (a fake tree) would keep reading
    /// its old value. The monitor asks it for one file per job.
    public func read(_ path: String, verifyLinked: Bool = false) -> Int64? {
        lock.lock()
        let cached = descriptors[path]
        lock.unlock()
        if let fd = cached {
            if !verifyLinked || Self.isLinked(fd), let value = Self.readCounter(fd) { return value }
            // The cgroup went away (or was replaced): drop it and look again, once.
            lock.lock()
            if descriptors[path] == fd { descriptors[path] = nil }
            lock.unlock()
            close(fd)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let value = Self.readCounter(fd)
        lock.lock()
        if value != nil, descriptors.count < capacity, descriptors[path] == nil {
            descriptors[path] = fd
            lock.unlock()
        } else {
            lock.unlock()
            close(fd)
        }
        return value
    }

    /// Closes the files of one tree (a job's, once it is removed).
    public func forget(under prefix: String) {
        lock.lock()
        let gone = descriptors.filter { $0.key.hasPrefix(prefix) }
        for path in gone.keys { descriptors[path] = nil }
        lock.unlock()
        for fd in gone.values { close(fd) }
    }

    static func isLinked(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_nlink > 0
    }

    /// One `pread` of at most 32 bytes (a counter is at most 20 digits and a newline).
    static func readCounter(_ fd: Int32) -> Int64? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            var n: Int
            repeat { n = pread(fd, buffer.baseAddress, 32, 0) } while n < 0 && errno == EINTR
            guard n > 0 else { return nil }
            return parseCounter(UnsafeBufferPointer(rebasing: buffer[..<n]))
        }
    }

    /// A non-negative whole number with optional surrounding blanks, clamped to
    /// `CgroupHierarchies.largestCounter`; nil for anything else (a sign, text, nothing).
    static func parseCounter(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = bytes.startIndex, end = bytes.endIndex
        func blank(_ b: UInt8) -> Bool { b == 32 || (9...13).contains(b) }
        while i < end, blank(bytes[i]) { i += 1 }
        while end > i, blank(bytes[end - 1]) { end -= 1 }
        guard i < end else { return nil }
        var value: Int64 = 0
        var clamped = false
        for b in bytes[i..<end] {
            guard (48...57).contains(b) else { return nil }
            if !clamped {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int64(b - 48))
                if o1 || o2 || sum > CgroupHierarchies.largestCounter { clamped = true } else { value = sum }
            }
        }
        return clamped ? CgroupHierarchies.largestCounter : value
    }
}
