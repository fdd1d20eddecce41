// Pure enough for the fuzz targets (tools/fuzz.sh), which compile it into one module with
// BDCore's sources and JobLimits.swift.
#if canImport(BDCore)
import BDCore
#endif
import Foundation

/// What `scontrol show job -o <id>` says about a job, as bdocker needs it.
struct SlurmJobInfo: Equatable, Sendable {
    var jobID: String
    var arrayJobID: String?
    var arrayTaskID: String?
    var jobName: String?
    var userName: String
    var uid: Int
    var account: String?
    var partition: String?
    var batchHost: String?
    var submitTime: Double?
    /// Seconds; nil for UNLIMITED (or Partition_Limit: the partition's, not the job's).
    var timeLimit: Double?
    var numNodes: Int
    var numCPUs: Int
    /// Bytes per node, or per CPU; at most one of them (nil or 0 = no request).
    var memoryPerNode: Int64?
    var memoryPerCPU: Int64?

    /// The job's CPU time limit on one node: its wall-clock limit times the CPUs it holds
    /// there (the job's CPUs spread evenly over its nodes). Nil without a time limit.
    var cpuSecondsPerNode: Double? {
        guard let timeLimit else { return nil }
        let total = timeLimit * Double(cpusPerNode)
        return total <= JobLimits.largestSeconds ? total : nil
    }

    /// The job's memory limit on one node: `--mem`, else `--mem-per-cpu` times the CPUs held
    /// there. Nil when the job asked for none (Slurm's 0 means the whole node).
    var memoryBytesPerNode: Int64? {
        if let memoryPerNode, memoryPerNode > 0 { return memoryPerNode }
        guard let memoryPerCPU, memoryPerCPU > 0 else { return nil }
        let (total, overflow) = memoryPerCPU.multipliedReportingOverflow(by: Int64(cpusPerNode))
        return overflow || total > JobLimits.largestBytes ? nil : total
    }

    var cpusPerNode: Int { max(1, (numCPUs + max(numNodes, 1) - 1) / max(numNodes, 1)) }
}

/// Parsing of what a Slurm prolog hands bdocker (`scontrol show job -o`, `scontrol show
/// config`). The job line is untrusted: it is `Key=Value` fields separated by single spaces,
/// and the values a user chooses (job name, comment, paths, account without slurmdbd) may hold
/// spaces and text such as ` TimeLimit=UNLIMITED`. So every key read is required to appear
/// exactly once as ` Key=`: a forged copy makes the line ambiguous and the job is refused
/// rather than misread. The keys read have values without spaces, except JobName, which
/// runs to the (unique) ` UserId=` that follows it.
enum SlurmJob {
    static let leading: Set<String> = ["JobId", "ArrayJobId", "ArrayTaskId"]
    static let keys = ["JobId", "ArrayJobId", "ArrayTaskId", "JobName", "UserId", "Account", "Partition", "BatchHost",
                       "SubmitTime", "TimeLimit", "NumNodes", "NumCPUs", "MinMemoryNode", "MinMemoryCPU"]

    static func parse(_ text: String) throws(BDockerError) -> SlurmJobInfo {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .filter { !$0.allSatisfy { $0 == " " } }
        guard lines.count == 1, let line = lines.first.map({ " " + String($0) }) else {
            throw .invalidInput("the Slurm job description has \(lines.count) lines, not one (scontrol show job -o JOBID)")
        }
        // Slurm writes the ids before the job name: nothing a user chooses comes before the
        // first " JobName=", so they are read there only.
        guard let name = line.range(of: " JobName=") else {
            throw .invalidInput("the Slurm job description has no JobName (scontrol show job -o JOBID)")
        }
        var values: [String: Substring] = [:]
        for key in keys {
            let needle = " \(key)="
            let scope = leading.contains(key) ? line.startIndex..<name.lowerBound : line.startIndex..<line.endIndex
            guard let first = line.range(of: needle, range: scope) else { continue }
            if line.range(of: needle, range: first.upperBound..<scope.upperBound) != nil {
                throw .invalidInput("the Slurm job description names \(key) twice (a job name or path holding '\(key)='?); refusing to guess")
            }
            let rest = line[first.upperBound...]
            values[key] = rest.prefix { $0 != " " }
        }
        if let end = line.range(of: " UserId=", range: name.upperBound..<line.endIndex) {
            values["JobName"] = line[name.upperBound..<end.lowerBound]
        }
        // Slurm prints one of the two; a second one can only be forged.
        if values["MinMemoryNode"] != nil && values["MinMemoryCPU"] != nil {
            throw .invalidInput("the Slurm job description has both MinMemoryNode and MinMemoryCPU; refusing to guess")
        }
        func value(_ key: String) -> String? {
            guard let v = values[key], !v.isEmpty, v != "(null)", v != "N/A" else { return nil }
            return String(v)
        }
        func require(_ key: String) throws(BDockerError) -> String {
            guard let v = value(key) else { throw .invalidInput("the Slurm job description has no \(key)") }
            return v
        }
        let jobID = try require("JobId")
        // Slurm always writes these: one missing means a cut line (a job name holding a
        // newline), and a missing limit must not read as no limit.
        for key in ["TimeLimit", "Partition"] { _ = try require(key) }
        guard values["MinMemoryNode"] != nil || values["MinMemoryCPU"] != nil else {
            throw .invalidInput("the Slurm job description has neither MinMemoryNode nor MinMemoryCPU")
        }
        let (userName, uid) = try user(try require("UserId"))
        guard let numCPUs = count(try require("NumCPUs")) else {
            throw .invalidInput("the Slurm job description's NumCPUs '\(try require("NumCPUs").prefix(40))' is not a count")
        }
        return SlurmJobInfo(
            jobID: jobID, arrayJobID: value("ArrayJobId"), arrayTaskID: value("ArrayTaskId"), jobName: value("JobName"),
            userName: userName, uid: uid, account: value("Account"), partition: value("Partition"), batchHost: value("BatchHost"),
            submitTime: value("SubmitTime").flatMap(time), timeLimit: try value("TimeLimit").flatMap { v throws(BDockerError) in try timeLimit(v) },
            numNodes: value("NumNodes").flatMap(count) ?? 1, numCPUs: numCPUs,
            memoryPerNode: try value("MinMemoryNode").flatMap { v throws(BDockerError) in try memory(v) },
            memoryPerCPU: try value("MinMemoryCPU").flatMap { v throws(BDockerError) in try memory(v) })
    }

    /// `name(uid)`.
    static func user(_ text: String) throws(BDockerError) -> (String, Int) {
        guard text.hasSuffix(")"), let open = text.lastIndex(of: "("),
              let uid = Int(text[text.index(after: open)..<text.index(before: text.endIndex)]), uid >= 0, uid <= Int(Int32.max),
              open > text.startIndex else {
            throw .invalidInput("the Slurm job description's UserId '\(text.prefix(80))' is not name(uid)")
        }
        return (String(text[..<open]), uid)
    }

    /// A whole number, or the first of a range (`NumNodes=1-1` while pending); 1 to 2^31.
    static func count(_ text: String) -> Int? {
        let first = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard let n = Int(first), n >= 1, n <= Int(Int32.max) else { return nil }
        return n
    }

    /// `[days-]hours:minutes:seconds` (or minutes:seconds); UNLIMITED, Partition_Limit and
    /// NONE are no limit of the job's own (nil), as is anything beyond JobLimits' largest.
    static func timeLimit(_ text: String) throws(BDockerError) -> Double? {
        if ["UNLIMITED", "PARTITION_LIMIT", "NONE", "INFINITE"].contains(text.uppercased()) { return nil }
        var days = 0.0
        var clock = Substring(text)
        if let dash = text.firstIndex(of: "-") {
            guard let d = JobLimits.number(text[..<dash]), d == d.rounded(.down) else {
                throw .invalidInput("the Slurm job's TimeLimit '\(text.prefix(80))' is not [days-]HH:MM:SS")
            }
            days = d
            clock = text[text.index(after: dash)...]
        }
        let seconds: Double?
        do {
            guard clock.contains(":") else { throw BDockerError.invalidInput("no clock") }
            seconds = try JobLimits.seconds(String(clock))
        } catch {
            throw .invalidInput("the Slurm job's TimeLimit '\(text.prefix(80))' is not [days-]HH:MM:SS")
        }
        // nil: more than JobLimits' largest, which is no limit.
        guard let seconds else { return nil }
        let total = days * 86_400 + seconds
        return total <= JobLimits.largestSeconds ? total : nil
    }

    /// Slurm's sizes: a number with K, M, G, T or P (powers of 1024), or a bare number of
    /// megabytes. 0 is Slurm's "all of the node's memory": no limit of the job's own (nil).
    static func memory(_ text: String) throws(BDockerError) -> Int64? {
        var t = text
        if let last = t.last, last.isNumber { t += "M" }
        if t.last == "P" {
            guard let v = JobLimits.number(t.dropLast()) else {
                throw .invalidInput("the Slurm job's memory '\(text.prefix(80))' is not a size")
            }
            let bytes = v * 1_125_899_906_842_624
            return bytes > 0 && bytes <= Double(JobLimits.largestBytes) ? Int64(bytes) : nil
        }
        guard let last = t.last, "KMGT".contains(last) else {
            throw .invalidInput("the Slurm job's memory '\(text.prefix(80))' is not a size (e.g. 512M or 2G)")
        }
        let bytes: Int64?
        do {
            bytes = try JobLimits.bytes(t)
        } catch {
            throw .invalidInput("the Slurm job's memory '\(text.prefix(80))' is not a size (e.g. 512M or 2G)")
        }
        guard let bytes, bytes > 0 else { return nil }
        return bytes
    }

    /// Slurm prints times in the local time zone without an offset (2024-05-01T12:00:00), as
    /// the node's clock has it; bdockerd on that node reads them in the same zone.
    static func time(_ text: String) -> Double? {
        // YYYY-MM-DDTHH:MM:SS exactly (Glibc's strptime is not visible to Swift).
        let bytes = Array(text.utf8)
        guard bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for b in bytes[range] {
                guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int32(b - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), year >= 1970, (1...12).contains(month),
              (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        parts.tm_isdst = -1
        let t = mktime(&parts)
        guard t != -1 else { return nil }
        return JobLimits.timestamp(Double(t))
    }

    /// `scontrol show config`'s `Key = Value` lines.
    static func parseConfig(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            guard let eq = line.range(of: " = ") else { continue }
            let key = line[..<eq.lowerBound].trimmingCharacters(in: .whitespaces)
            values[key] = line[eq.upperBound...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }
}
