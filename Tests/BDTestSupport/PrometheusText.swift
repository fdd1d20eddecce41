import Foundation

/// A strict reader of the Prometheus text exposition format (0.0.4), for tests that scrape
/// `/metrics`: every line must be a comment, a `# TYPE`/`# HELP` line or a sample
/// `name{label="value",...} number`, or parsing fails with the line.
public struct PrometheusText: Sendable {
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var line: String
        public var description: String { "not a Prometheus exposition line: \(line)" }
    }

    public var samples: [Sample] = []
    /// Metric family name → counter, gauge, histogram, summary or untyped.
    public var types: [String: String] = [:]

    public static func parse(_ text: String) throws -> PrometheusText {
        var result = PrometheusText()
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                if parts.count >= 4, parts[1] == "TYPE" {
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else { throw ParseError(line: line) }
                    result.types[parts[2]] = parts[3]
                }
                continue
            }
            result.samples.append(try sample(line))
        }
        return result
    }

    static func sample(_ line: String) throws -> Sample {
        var rest = Substring(line)
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard let first = name.first, !first.isNumber else { throw ParseError(line: line) }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let key = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                guard !key.isEmpty, rest.dropFirst(key.count).hasPrefix("=\"") else { throw ParseError(line: line) }
                rest = rest.dropFirst(key.count + 2)
                var value = ""
                while let c = rest.first, c != "\"" {
                    rest = rest.dropFirst()
                    if c == "\\" {
                        guard let escaped = rest.first else { throw ParseError(line: line) }
                        rest = rest.dropFirst()
                        value.append(escaped == "n" ? "\n" : escaped)
                    } else {
                        value.append(c)
                    }
                }
                guard rest.first == "\"" else { throw ParseError(line: line) }
                rest = rest.dropFirst()
                labels[String(key)] = value
                if rest.first == "," { rest = rest.dropFirst() }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw ParseError(line: line) }
        let fields = rest.dropFirst().split(separator: " ")
        guard (1...2).contains(fields.count), let value = number(fields[0]) else { throw ParseError(line: line) }
        return Sample(name: String(name), labels: labels, value: value)
    }

    static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    /// The value of the one sample with this name and exactly these labels (histogram buckets
    /// aside, whose `le` must then be given too).
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// Every label value of every sample: what a test checks holds no user name or job id.
    public var labelValues: Set<String> {
        Set(samples.flatMap { $0.labels.values })
    }
}
