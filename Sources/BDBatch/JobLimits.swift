// The fuzz targets (tools/fuzz.sh) compile this file into one module with BDCore's sources.
#if canImport(BDCore)
import BDCore
#endif
import Foundation

/// Parsing of the limit forms batch systems write (SGE's `h_cpu`, `h_data`, `h_vmem`).
///
/// The values come from the job's spool `config`, i.e. from what the job's submitter asked for,
/// so nothing here may trap: text that is not a limit is `invalidInput` naming it, and a limit
/// too large to mean anything is no limit (nil), exactly like `INFINITY`:
/// - memory: more than `largestBytes` (2^62 bytes, 4 EiB) — also what overflows a byte count,
///   e.g. `99999999999999999999` or `1e300G`;
/// - CPU time: more than `largestSeconds` (100 years), e.g. `99999999:00:00` or `1e400`.
public enum JobLimits {
    /// The largest memory limit taken as a limit; anything above is unlimited.
    public static let largestBytes: Int64 = 1 << 62
    /// The largest CPU limit taken as a limit (100 years of 365.25 days); anything above is unlimited.
    public static let largestSeconds: Double = 100 * 365.25 * 86_400
    /// The latest epoch time bdocker accepts from a batch system (9999-12-31T23:59:59Z), so
    /// that every accepted time is a whole number of seconds that fits an `Int`.
    public static let largestTimestamp: Double = 253_402_300_799

    /// `HH:MM:SS`, `MM:SS`, plain seconds (decimals allowed), or INFINITY (nil). More than
    /// `largestSeconds` in total is nil too.
    public static func seconds(_ text: String) throws(BDockerError) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.uppercased() == "INFINITY" || t.isEmpty { return nil }
        let parts = t.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { throw .invalidInput("'\(text.prefix(80))' is not a time (HH:MM:SS, seconds or INFINITY)") }
        var total = 0.0
        for part in parts {
            guard let value = number(part) else {
                throw .invalidInput("'\(text.prefix(80))' is not a time (HH:MM:SS, seconds or INFINITY)")
            }
            // A part (1e400) or a step (1e308:0:0) can be +inf; that, like anything this large,
            // means no limit.
            total = total * 60 + value
        }
        guard total <= largestSeconds else { return nil }
        return total
    }

    /// Bytes with an optional K/M/G/T suffix (lower-case = powers of 1000, upper-case = 1024,
    /// as in SGE's memory specifiers), or INFINITY (nil). More than `largestBytes` is nil too.
    public static func bytes(_ text: String) throws(BDockerError) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.uppercased() == "INFINITY" || t.isEmpty { return nil }
        let multipliers: [Character: Double] = ["k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
                                                "K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var digits = Substring(t)
        var factor = 1.0
        if let last = t.last, let m = multipliers[last] {
            factor = m
            digits = t.dropLast()
        }
        guard let value = number(digits) else {
            throw .invalidInput("'\(text.prefix(80))' is not a memory size (e.g. 512M, 2G or INFINITY)")
        }
        // value (1e400) or value * factor (1e300T) may be +inf; the comparison is false for it.
        let total = value * factor
        guard total <= Double(largestBytes) else { return nil }
        return Int64(total)
    }

    /// A non-negative number as `Double(String)` reads it (decimal, or hexadecimal as SGE's
    /// memory specifiers allow), +inf for a numeral too large for a Double (`1e400`); nil for
    /// anything else, including negatives and the words `nan` and `inf`, which `Double(String)`
    /// would take (only these characters may appear, and none of them spells those words).
    static func number(_ text: Substring) -> Double? {
        guard text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isASCIIHexDigit || "xXpP.+-".unicodeScalars.contains($0)) }),
              let value = Double(text), !value.isNaN, value >= 0 else { return nil }
        return value
    }

    /// The signal a `terminate_method` names (SIGKILL when it names none or a script).
    public static func signal(_ method: String?) -> Int32 {
        guard let method = method?.trimmingCharacters(in: .whitespaces).uppercased(), !method.isEmpty, method != "NONE" else {
            return SIGKILL
        }
        if let n = Int32(method), n > 0 && n < 65 { return n }
        let names: [String: Int32] = ["KILL": SIGKILL, "TERM": SIGTERM, "INT": SIGINT, "HUP": SIGHUP, "QUIT": SIGQUIT,
                                      "USR1": SIGUSR1, "USR2": SIGUSR2, "XCPU": SIGXCPU]
        let bare = method.hasPrefix("SIG") ? String(method.dropFirst(3)) : method
        return names[bare] ?? SIGKILL
    }

    /// An epoch time from a batch system as whole seconds, or nil when it is not a finite
    /// number from 0 to `largestTimestamp` (nan, inf, 1e400, negative, not a number).
    public static func timestamp(_ text: String) -> Double? {
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)) else { return nil }
        return timestamp(value)
    }

    /// `value` if it is finite and from 0 to `largestTimestamp`, else nil.
    public static func timestamp(_ value: Double) -> Double? {
        guard value.isFinite, value >= 0, value <= largestTimestamp else { return nil }
        return value
    }

    /// A duration or time in seconds as a whole number for an accounting record: rounded down,
    /// and clamped to 0...`largestTimestamp` (nan counts as 0, +inf as the largest), so the conversion cannot trap.
    public static func wholeSeconds(_ value: Double) -> Int {
        guard !value.isNaN, value > 0 else { return 0 }
        return Int(min(value, largestTimestamp).rounded(.down))
    }
}
