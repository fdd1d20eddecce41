// Fuzz target: the SGE spool readers (Sources/BDBatch/SGESpoolParsing.swift) and the limit
// parsers (Sources/BDBatch/JobLimits.swift).
// Invariants: nothing traps; every limit is nil or in range; every pid fits pid_t and its
// range; the config reader round-trips.
import Foundation

func checkValue(_ value: String) {
    do {
        if let seconds = try JobLimits.seconds(value) {
            require(seconds.isFinite && seconds >= 0 && seconds <= JobLimits.largestSeconds, "h_cpu '\(value)' gave \(seconds)")
        }
    } catch { requireMessage(error) }
    do {
        if let bytes = try JobLimits.bytes(value) {
            require(bytes >= 0 && bytes <= JobLimits.largestBytes, "h_vmem '\(value)' gave \(bytes)")
        }
    } catch { requireMessage(error) }
    let signal = JobLimits.signal(value)
    require((1...64).contains(signal), "terminate_method '\(value)' gave signal \(signal)")
    if let time = JobLimits.timestamp(value) {
        require(time.isFinite && time >= 0 && time <= JobLimits.largestTimestamp, "timestamp '\(value)' gave \(time)")
        require(JobLimits.wholeSeconds(time) >= 0, "wholeSeconds of \(time)")
    }
    if let number = Double(value) {
        let whole = JobLimits.wholeSeconds(number)
        require(whole >= 0 && Double(whole) <= JobLimits.largestTimestamp, "wholeSeconds(\(number)) = \(whole)")
    }
    for pidMax in [32_768, 4_194_304, Int(Int32.max), Int.max] {
        do {
            let pid = try SGESpool.parsePID(value, path: "pid", pidMax: pidMax)
            require(pid >= 2 && pid < pidMax && pid_t(exactly: pid) != nil, "pid '\(value)' gave \(pid) (pid_max \(pidMax))")
        } catch { requireMessage(error) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)
    let config = SGESpool.parseConfig(text)
    let rendered = config.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    require(SGESpool.parseConfig(rendered) == config, "the config does not round-trip:\n\(rendered)")
    if let time = SGESpool.submissionTime(config) {
        require(time.isFinite && time >= 0 && time <= JobLimits.largestTimestamp, "submission_time gave \(time)")
    }
    checkValue(text)
    for value in config.values { checkValue(value) }
    return 0
}
