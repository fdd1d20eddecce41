import Foundation

/// Process resource limits the daemons adjust at start.
public enum ProcessLimits {
    /// Raises the descriptor limit: the monitor keeps each live job's counter files open, five
    /// per job. Root (bdockerd) may raise the hard limit too, up to the kernel's `nr_open`
    /// (at most 2^20); anybody may raise the soft limit to the hard one.
    public static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let ceiling = min(rlim_t(1 << 20), kernelMaximum() ?? limit.rlim_max)
        if geteuid() == 0, limit.rlim_max < ceiling {
            var raised = rlimit(rlim_cur: ceiling, rlim_max: ceiling)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return }
        }
        guard limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// /proc/sys/fs/nr_open: the most descriptors any process may have.
    static func kernelMaximum() -> rlim_t? {
        guard let text = try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8) else { return nil }
        return rlim_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
