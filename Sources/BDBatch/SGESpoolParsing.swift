// Pure enough for the fuzz targets (tools/fuzz.sh), which compile it into one module with
// BDCore's sources and JobLimits.swift.
#if canImport(BDCore)
import BDCore
#endif
import Foundation

/// Reading SGE's job spool files. Their contents are treated as untrusted: every number is
/// range-checked, so a bad file is an `invalidInput` naming it (or an ignored value), never a
/// trap in the daemon.
enum SGESpool {
    static func readConfig(_ path: String) throws(BDockerError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .invalidInput("cannot read the SGE job config \(path) (is SGE_JOB_SPOOL_DIR right?)")
        }
        return parseConfig(text)
    }

    /// `key=value` lines (split at the first `=`); lines without `=` are skipped, and a key
    /// given twice keeps its last value. Lines end with `\n`, `\r\n` or `\r`.
    static func parseConfig(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return values
    }

    /// The job's submission time: epoch seconds, finite, from 0 to `JobLimits.largestTimestamp`.
    /// Anything else (nan, inf, 1e400, negative, not a number) is ignored (nil): the accounting
    /// record then uses the job's start time, as for a spool without `submission_time`.
    static func submissionTime(_ config: [String: String]) -> Double? {
        config["submission_time"].flatMap { JobLimits.timestamp($0) }
    }

    static func readPID(_ path: String) throws(BDockerError) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .invalidInput("cannot read the shepherd's pid from \(path)")
        }
        let pid = try parsePID(text, path: path, pidMax: pidMax())
        guard kill(pid_t(pid), 0) == 0 || errno == EPERM else {
            throw .invalidInput("the job's shepherd (pid \(pid) from \(path)) is not running")
        }
        return pid
    }

    /// The pid in a pid file: a whole number from 2 (not init) to `pidMax - 1`, so it always
    /// fits `pid_t`.
    static func parsePID(_ text: String, path: String, pidMax: Int) throws(BDockerError) -> Int {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let largest = min(pidMax, Int(Int32.max)) - 1
        guard let pid = Int(t), pid >= 2, pid <= largest else {
            throw .invalidInput("cannot read the shepherd's pid from \(path): '\(t.prefix(40))' is not a process id from 2 to \(largest)")
        }
        return pid
    }

    /// The kernel's `/proc/sys/kernel/pid_max` (pids are below it), or `Int32.max` when it
    /// cannot be read.
    static func pidMax(_ path: String = "/proc/sys/kernel/pid_max") -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              value > 2, value <= Int(Int32.max) else {
            return Int(Int32.max)
        }
        return value
    }
}
