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
        let result = try await runCommand(path, ["-f", file, option])
        guard result.status == 0 else { throw BDockerError.internalFault("qacct \(option): \(result.stderr)") }
        var table: [String: [Double]] = [:]
        var inBody = false
        for line in result.stdout.split(separator: "\n") {
            if line.hasPrefix("=") { inBody = true; continue }
            let parts = line.split(separator: " ")
            guard inBody, parts.count == 8 else { continue }
            table[String(parts[0])] = parts.dropFirst().compactMap { Double($0) }
        }
        return table
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
