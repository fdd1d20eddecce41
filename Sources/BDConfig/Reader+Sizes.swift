import Foundation

extension Reader {
    /// A size in bytes: a whole number with an optional K, M, G or T suffix (powers of 1024),
    /// from 1 KiB to 1 PiB.
    func byteSize(_ section: String, _ key: String) throws(ConfigError) -> Int64? {
        guard let value = try string(section, key) else { return nil }
        let text = value.trimmingCharacters(in: .whitespaces)
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var factor: Int64 = 1
        if let last = text.last?.uppercased().first, let unit = units[last] {
            factor = unit
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), digits.count <= 16,
              let number = Int64(digits) else {
            throw error(section, key, "'\(value)' is not a size; use bytes or a number with K, M, G or T (e.g. 8G)")
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        guard !overflow, (1 << 10)...(1 << 50) ~= bytes else {
            throw error(section, key, "'\(value)' is out of range; use 1K to 1024T")
        }
        return bytes
    }
}
