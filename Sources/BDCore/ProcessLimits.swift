import Foundation

/// Process resource limits the daemons adjust at start.
public enum ProcessLimits {
    /// Raises the soft descriptor limit to the hard one (systemd gives 1024 soft, 524288 hard):
    /// the monitor keeps each live job's counter files open, five per job.
    public static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
