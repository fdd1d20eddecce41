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
        // In Double, never below zero: rows written before counters were clamped (or by hand)
        // may hold any Int64, and Int64 arithmetic on them could trap.
        func difference(_ a: Int64, _ b: Int64) -> Double { max(0, Double(a) - (onlyDocker ? Double(b) : 0)) }
        func cpuNanos(_ s: SampleRecord) -> Double { difference(s.cpuNanosTree, s.cpuNanosCommon) }
        func memBytes(_ s: SampleRecord) -> Double { difference(s.memBytesTree, s.memBytesCommon) }
        // Counters are cumulative; the largest reading is the total (a reading taken after a
        // container's cgroup went away can only be equal or lower).
        let cpu = (ordered.map(cpuNanos).max() ?? 0) / 1e9
        var integral = 0.0
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            integral += (memBytes(a) + memBytes(b)) / 2 * max(0, b.takenAt - a.takenAt)
        }
        // The tree's high-water mark catches peaks between samples. With only_docker it is
        // reduced by COMMON's memory at that sample (COMMON has no mark of its own apart).
        let peak = ordered.map { s in
            max(memBytes(s), onlyDocker ? difference(s.maxMemBytesTree, s.memBytesCommon) : max(0, Double(s.maxMemBytesTree)))
        }.max() ?? 0
        return JobUsage(cpu: cpu, mem: integral / bytesPerGB, maxvmem: peak)
    }
}
