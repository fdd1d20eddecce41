import BDCore
import Foundation

/// Parsing of the limit forms batch systems write (SGE's `h_cpu`, `h_data`, `h_vmem`).
public enum JobLimits {
    /// `HH:MM:SS`, `MM:SS`, plain seconds (decimals allowed), or INFINITY (nil).
    public static func seconds(_ text: String) throws(BDockerError) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.uppercased() == "INFINITY" || t.isEmpty { return nil }
        let parts = t.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { throw .invalidInput("'\(text)' is not a time (HH:MM:SS, seconds or INFINITY)") }
        var total = 0.0
        for part in parts {
            guard let value = Double(part), value >= 0, value.isFinite else {
                throw .invalidInput("'\(text)' is not a time (HH:MM:SS, seconds or INFINITY)")
            }
            total = total * 60 + value
        }
        return total
    }

    /// Bytes with an optional K/M/G/T suffix (lower-case = powers of 1000, upper-case = 1024,
    /// as in SGE's memory specifiers), or INFINITY (nil).
    public static func bytes(_ text: String) throws(BDockerError) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.uppercased() == "INFINITY" || t.isEmpty { return nil }
        let multipliers: [Character: Double] = ["k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
                                                "K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(t)
        var factor = 1.0
        if let last = t.last, let m = multipliers[last] {
            factor = m
            number = t.dropLast()
        }
        guard let value = Double(number), value >= 0, value.isFinite else {
            throw .invalidInput("'\(text)' is not a memory size (e.g. 512M, 2G or INFINITY)")
        }
        return Int64(value * factor)
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
}
