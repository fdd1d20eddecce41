import BDCore
import Foundation

/// The report's tables as CSV: RFC 4180 quoting, LF line ends, hours with six decimals. Names
/// come from the records, so from the users: a cell that a spreadsheet would read as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`.
public enum ReportCSV {
    /// What `/report.csv?by=` and `bdocker-acct report --csv` name.
    public enum Table: String, Sendable, CaseIterable {
        case owner, group, queue, host, project
        /// CPU hours per UTC day.
        case day
        /// CPU hours per UTC day and owner (one row each, days without jobs left out).
        case dayOwner = "day_owner"

        public var dimension: ReportDimension? { ReportDimension(rawValue: rawValue) }

        public static func named(_ name: String) throws(BDockerError) -> Table {
            guard let table = Table(rawValue: name) else {
                throw .invalidInput("by '\(name.prefix(40))' is not a report table; use one of "
                    + allCases.map(\.rawValue).joined(separator: ", "))
            }
            return table
        }
    }

    public static func render(_ report: UsageReport, _ table: Table) -> String {
        let hours = { (value: Double) in String(format: "%.6f", value / 3600) }
        var rows: [[String]]
        switch table {
        case .day:
            rows = [["day", "cpu_hours"]] + report.days.map { [ReportWindow.date($0.day), hours($0.cpu)] }
        case .dayOwner:
            rows = [["day", "owner", "cpu_hours"]]
            for day in report.days {
                for (owner, cpu) in day.cpuByOwner.sorted(by: { $0.key < $1.key }) {
                    rows.append([ReportWindow.date(day.day), owner, hours(cpu)])
                }
            }
        case .owner, .group, .queue, .host, .project:
            let dimension = table.dimension!  // every case here is a dimension's
            rows = [[dimension.rawValue, "jobs", "failed", "killed", "cpu_hours", "memory_gb_hours", "wallclock_hours"]]
            for line in report.lines(dimension) {
                let u = line.usage
                rows.append([line.name, String(u.jobs), String(u.failed), String(u.killed), hours(u.cpu), hours(u.mem),
                             hours(Double(u.wallclock))])
            }
        }
        return rows.map { $0.map(cell).joined(separator: ",") + "\n" }.joined()
    }

    /// One cell, defused and quoted. Numbers are ours and never start with a sign.
    static func cell(_ text: String) -> String {
        var text = text
        if let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { text = "'" + text }
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The file name a download suggests: `usage-owner-2026-11-01-to-2026-11-30.csv`.
    public static func fileName(_ report: UsageReport, _ table: Table) -> String {
        "usage-\(table.rawValue)-\(ReportWindow.date(report.window.since))-to-\(ReportWindow.date(report.window.lastDay)).csv"
    }
}
