// Fuzz target: the Slurm job-line and config readers (Sources/BDBatch/SlurmJobParsing.swift)
// with the limit parsers they use (Sources/BDBatch/JobLimits.swift). The job line carries
// what users choose (job names, comments, paths), so nothing here may trap.
// Invariants: nothing traps; a parsed job has a uid that fits uid_t, at least one CPU, and
// per-node limits that are nil or in range; refusals are invalidInput with a message.
import Foundation

func checkToken(_ value: String) {
    do {
        if let seconds = try SlurmJob.timeLimit(value) {
            require(seconds.isFinite && seconds >= 0 && seconds <= JobLimits.largestSeconds, "TimeLimit '\(value)' gave \(seconds)")
        }
    } catch { requireMessage(error) }
    do {
        if let bytes = try SlurmJob.memory(value) {
            require(bytes > 0 && bytes <= JobLimits.largestBytes, "memory '\(value)' gave \(bytes)")
        }
    } catch { requireMessage(error) }
    if let time = SlurmJob.time(value) {
        require(time.isFinite && time >= 0 && time <= JobLimits.largestTimestamp, "time '\(value)' gave \(time)")
    }
    if let n = SlurmJob.count(value) { require(n >= 1 && n <= Int(Int32.max), "count '\(value)' gave \(n)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    do {
        let info = try SlurmJob.parse(text)
        require(info.uid >= 0 && uid_t(exactly: info.uid) != nil, "uid \(info.uid)")
        require(info.numCPUs >= 1 && info.cpusPerNode >= 1, "cpus \(info.numCPUs) per node \(info.cpusPerNode)")
        if let cpu = info.cpuSecondsPerNode {
            require(cpu.isFinite && cpu >= 0 && cpu <= JobLimits.largestSeconds, "cpu limit \(cpu)")
        }
        if let memory = info.memoryBytesPerNode { require(memory > 0 && memory <= JobLimits.largestBytes, "memory limit \(memory)") }
        require(!(info.memoryPerNode != nil && info.memoryPerCPU != nil), "both memory keys accepted")
    } catch { requireMessage(error) }
    _ = SlurmJob.parseConfig(text)
    checkToken(text)
    for token in text.split(whereSeparator: { $0 == " " || $0 == "=" || $0 == "\n" }).prefix(64) { checkToken(String(token)) }
    return 0
}
