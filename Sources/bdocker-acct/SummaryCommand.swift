import ArgumentParser
import BDAccounting
import BDCore
import Foundation

struct Summary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Usage per owner, group, queue, host, project or account, and the total: the sums qacct prints.",
        discussion: """
            WALLCLOCK, UTIME, STIME, CPU and IOW are seconds, MEMORY GB·s, IO GB. The last row is \
            the total over the selected jobs (qacct's "Total System Usage"); --by none prints it \
            alone, as qacct without options does. --by queue,owner groups by both, as qacct -q -o.
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var filters: FilterOptions

    @Option(name: .customShort("o"), help: ArgumentHelp("Only this owner's jobs: qacct's -o, as -u/--owner.", valueName: "owner"))
    var shortOwner: String?

    @Option(help: ArgumentHelp("Group by one or more of \(SummaryGrouping.allCases.map(\.rawValue).joined(separator: ", ")), "
                               + "comma-separated (queue,owner groups by both), or none for the total alone.", valueName: "grouping,..."),
            completion: .list(SummaryGrouping.allCases.map(\.rawValue) + ["none"]))
    var by = "owner"

    @Flag(help: "JSON instead of a table: {\"by\": [...], \"rows\": [...], \"total\": {...}}.")
    var json = false

    func run() async throws {
        do {
            let filter = try filters.filter(shortOwner: shortOwner)
            let report = try store.reader().summary(by: try Self.groupings(by), filter)
            if json {
                print(try OutputFormat.json(SummaryJSON(report)))
                return
            }
            print(Self.table(report), terminator: "")
        } catch {
            CommandLineExit.fail(error)
        }
    }

    /// `--by owner`, `--by queue,owner`, `--by none`. Parsed here rather than by ArgumentParser,
    /// whose refusal would list every value on lines of its own.
    static func groupings(_ text: String) throws(BDockerError) -> [SummaryGrouping] {
        if text == "none" { return [] }
        var groupings: [SummaryGrouping] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let grouping = SummaryGrouping(rawValue: String(name)), !groupings.contains(grouping) else {
                throw .invalidInput("--by '\(text)': give one or more of \(SummaryGrouping.allCases.map(\.rawValue).joined(separator: ", ")), "
                    + "comma-separated and each once, or none")
            }
            groupings.append(grouping)
        }
        return groupings
    }

    /// The table: a row per group, then the total below a rule; with no grouping the total
    /// alone under qacct's title.
    static func table(_ report: SummaryReport) -> String {
        func numbers(_ u: UsageSummary) -> [String] {
            [String(u.jobs), String(u.wallclock)] + [u.utime, u.stime, u.cpu, u.mem, u.io, u.iow].map { String(format: "%.3f", $0) }
        }
        let columns = ["JOBS", "WALLCLOCK", "UTIME", "STIME", "CPU", "MEMORY", "IO", "IOW"]
        let labels = report.groupings.map(\.header)
        let header = labels + columns
        let numeric = Set(labels.count..<header.count)
        guard !labels.isEmpty else {
            return "Total System Usage\n" + TextTable(header: header, rows: [numbers(report.total)], rightAligned: numeric, rule: "=").render()
        }
        let totalLabel = ["Total"] + Array(repeating: "", count: labels.count - 1)
        return TextTable(header: header, rows: report.rows.map { $0.groups + numbers($0) }, rightAligned: numeric, rule: "=",
                         footer: [totalLabel + numbers(report.total)]).render()
    }
}

extension SummaryGrouping {
    /// The column's title in the table.
    var header: String { rawValue.uppercased() }
}

/// The summary as JSON: the groupings, a row per group keyed by the groupings' own names
/// (`{"owner": "ann", "jobs": 3, ...}`), and the total without group keys.
struct SummaryJSON: Encodable {
    let report: SummaryReport

    init(_ report: SummaryReport) { self.report = report }

    struct Key: CodingKey {
        let stringValue: String
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    struct Usage: Encodable {
        let groupings: [SummaryGrouping]
        let usage: UsageSummary

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            for (grouping, value) in zip(groupings, usage.groups) {
                try c.encode(value, forKey: Key(grouping.rawValue))
            }
            try c.encode(usage.jobs, forKey: Key("jobs"))
            try c.encode(usage.wallclock, forKey: Key("wallclock"))
            for (name, value) in [("utime", usage.utime), ("stime", usage.stime), ("cpu", usage.cpu), ("mem", usage.mem),
                                  ("io", usage.io), ("iow", usage.iow)] {
                try c.encode(value, forKey: Key(name))
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(report.groupings.map(\.rawValue), forKey: Key("by"))
        try c.encode(report.rows.map { Usage(groupings: report.groupings, usage: $0) }, forKey: Key("rows"))
        try c.encode(Usage(groupings: [], usage: report.total), forKey: Key("total"))
    }
}
