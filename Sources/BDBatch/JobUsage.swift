import BDStore
import Foundation

/// What a job's containers used, computed from its samples at clean.
public struct JobUsage: Sendable, Equatable {
    /// CPU seconds.
    public var cpu: Double
    /// Integral of memory over time, GB·s (GB = 1024³ bytes, as SGE's qacct reports).
    public var mem: Double
    /// Largest memory seen, bytes.
    public var maxvmem: Double

    public static let bytesPerGB = 1_073_741_824.0

    public init(cpu: Double, mem: Double, maxvmem: Double) {
        self.cpu = cpu
        self.mem = mem
        self.maxvmem = maxvmem
    }

    /// - Parameter onlyDocker: count the job tree minus COMMON (the containers) rather than
    ///   the whole tree.
    public static func compute(samples: [SampleRecord], onlyDocker: Bool) -> JobUsage {
        let ordered = samples.sorted { $0.takenAt < $1.takenAt }
        func cpuNanos(_ s: SampleRecord) -> Int64 { onlyDocker ? max(0, s.cpuNanosTree - s.cpuNanosCommon) : s.cpuNanosTree }
        func memBytes(_ s: SampleRecord) -> Int64 { onlyDocker ? max(0, s.memBytesTree - s.memBytesCommon) : s.memBytesTree }
        // Counters are cumulative; the largest reading is the total (a reading taken after a
        // container's cgroup went away can only be equal or lower).
        let cpu = Double(ordered.map(cpuNanos).max() ?? 0) / 1e9
        var integral = 0.0
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            integral += Double(memBytes(a) + memBytes(b)) / 2 * (b.takenAt - a.takenAt)
        }
        // The tree's high-water mark catches peaks between samples. With only_docker it is
        // reduced by COMMON's memory at that sample (COMMON has no mark of its own apart).
        let peak = ordered.map { s in
            onlyDocker ? max(memBytes(s), s.maxMemBytesTree - s.memBytesCommon) : max(s.maxMemBytesTree, s.memBytesTree)
        }.max() ?? 0
        return JobUsage(cpu: cpu, mem: integral / bytesPerGB, maxvmem: Double(peak))
    }
}
