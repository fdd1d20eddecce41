import BDCore
import Foundation

/// Grid Engine's `qacct` (package gridengine-client), run on a file.
public enum Qacct {
    public static let path = "/usr/bin/qacct"

    /// `qacct -f FILE -j JOB` as field → value (the first record of that job).
    public static func job(file: String, _ job: Int) async throws -> [String: String] {
        let result = try await runCommand(path, ["-f", file, "-j", String(job)])
        guard result.status == 0 else { throw BDockerError.notFound("qacct -j \(job): \(result.stderr)") }
        var fields: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") where !line.hasPrefix("=") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, fields[String(parts[0])] == nil else { continue }
            fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// A summary table (`-o`, `-h`, `-q`, `-A`): group → [WALLCLOCK, UTIME, STIME, CPU, MEMORY, IO, IOW].
    public static func summary(file: String, _ option: String) async throws -> [String: [Double]] {
        var groups: [String: [Double]] = [:]
        for (key, values) in try await table(file: file, [option]) where key.count == 1 { groups[key[0]] = values }
        return groups
    }

    /// Any summary qacct prints (`qacct -f FILE ARGUMENTS`): the group columns of each row (none
    /// for "Total System Usage", two for `-q -o`, ...) → [WALLCLOCK, UTIME, STIME, CPU, MEMORY, IO, IOW].
    public static func table(file: String, _ arguments: [String], environment: [String: String]? = nil) async throws
        -> [[String]: [Double]] {
        let result = try await runCommand(path, ["-f", file] + arguments, environment: environment)
        guard result.status == 0 else { throw BDockerError.internalFault("qacct \(arguments): \(result.stderr)") }
        var table: [[String]: [Double]] = [:]
        var inBody = false
        for line in result.stdout.split(separator: "\n") {
            if line.hasPrefix("=") { inBody = true; continue }
            // Group names hold no blanks, so a row is its groups and then the 7 numbers.
            let parts = line.split(separator: " ").map(String.init)
            guard inBody, parts.count >= 7 else { continue }
            let numbers = parts.suffix(7).compactMap { Double($0) }
            guard numbers.count == 7 else { continue }
            table[Array(parts.dropLast(7))] = numbers
        }
        return table
    }

    /// `qacct -f FILE -j ARGUMENTS` as printed, trailing blanks trimmed from each line and the
    /// summary qacct adds after a list of every job ("Total System Usage", or the table of
    /// `-q`, `-o`...) left off.
    public static func jobs(file: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> CommandResult {
        var result = try await runCommand(path, ["-f", file, "-j"] + arguments, environment: environment)
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var line = Substring(line)
            while line.last == " " { line.removeLast() }
            return String(line)
        }
        if let summary = lines.firstIndex(where: { $0 == "Total System Usage" || $0.contains(" WALLCLOCK ") }) {
            lines.removeSubrange(summary...)
        }
        result.stdout = lines.joined(separator: "\n")
        if !result.stdout.isEmpty, !result.stdout.hasSuffix("\n") { result.stdout += "\n" }
        return result
    }

    /// "1.500GB" → bytes (qacct scales memory by 1024).
    public static func bytes(_ text: String) -> Double? {
        let units: [(String, Double)] = [("TB", 0x1p40), ("GB", 0x1p30), ("MB", 0x1p20), ("KB", 0x1p10), ("B", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).map { $0 * factor }
        }
        return nil
    }
}
