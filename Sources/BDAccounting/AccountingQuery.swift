import BDCore
import Foundation
import GRDB

/// Which records an export, summary or job view covers: the questions `qacct` filters on.
///
/// Times select by start time, as `qacct -b/-e` do: `since` inclusive, `until` exclusive (so
/// `since 2026-11-01, until 2026-12-01` is November exactly; qacct's inclusive `-e T` is
/// `until T+1`). Every other field is an exact match, except `host`, which ignores case as
/// `qacct -h` does. `tasks` narrows `job` to some of its array tasks.
///
/// Each filter is one bound `?` on a column with an index of its own (migrations/accounting
/// 0001 and 0002), so an audit of one owner, host or job never scans the whole history.
public struct AccountingFilter: Sendable, Equatable {
    public var since: Int?
    public var until: Int?
    public var owner: String?
    public var group: String?
    public var queue: String?
    public var host: String?
    public var project: String?
    public var account: String?
    public var job: Int?
    public var tasks: TaskRange?

    public init(since: Int? = nil, until: Int? = nil, owner: String? = nil, group: String? = nil, queue: String? = nil,
                host: String? = nil, project: String? = nil, account: String? = nil, job: Int? = nil,
                tasks: TaskRange? = nil) {
        self.since = since
        self.until = until
        self.owner = owner
        self.group = group
        self.queue = queue
        self.host = host
        self.project = project
        self.account = account
        self.job = job
        self.tasks = tasks
    }

    /// The WHERE clause (empty without filters) and its arguments.
    var sql: (clause: String, arguments: StatementArguments) {
        var terms: [String] = []
        var arguments: StatementArguments = []
        func add(_ term: String, _ values: any DatabaseValueConvertible...) {
            terms.append(term)
            for value in values { arguments += [value] }
        }
        // likelihood(): a period is mostly a small part of the history (the last days, a
        // month). Without the hint SQLite guesses that an open range holds a quarter of the
        // table and scans all of it in id order rather than sort the rows the index finds
        // (QueryPlanTests; 0.05 is not yet enough for it).
        if let since { add("likelihood(start_time >= ?, 0.01)", since) }
        if let until { add("likelihood(start_time < ?, 0.01)", until) }
        if let owner { add("owner = ?", owner) }
        if let group { add("grp = ?", group) }
        if let queue { add("qname = ?", queue) }
        // NOCASE as the records_host index is, so the index serves it.
        if let host { add("hostname = ? COLLATE NOCASE", host) }
        if let project { add("project = ?", project) }
        if let account { add("account = ?", account) }
        if let job { add("job_number = ?", job) }
        if let tasks {
            if tasks.first == tasks.last {
                add("task_number = ?", tasks.first)
            } else {
                add("task_number BETWEEN ? AND ?", tasks.first, tasks.last)
                if tasks.step > 1 { add("(task_number - ?) % ? = 0", tasks.first, tasks.step) }
            }
        }
        return (terms.isEmpty ? "" : "WHERE " + terms.joined(separator: " AND "), arguments)
    }
}

/// An array-task range as `qsub -t` and `qacct -t` write it: `N`, `N-M` or `N-M:STEP`, ids from 1.
public struct TaskRange: Sendable, Equatable, CustomStringConvertible {
    public var first: Int
    public var last: Int
    public var step: Int

    public init(first: Int, last: Int, step: Int = 1) {
        self.first = first
        self.last = last
        self.step = step
    }

    public static func parse(_ text: String) throws(BDockerError) -> TaskRange {
        func number(_ part: Substring) -> Int? {
            guard !part.isEmpty, part.utf8.allSatisfy({ (48...57).contains($0) }), let n = Int(part), n >= 1 else { return nil }
            return n
        }
        let bounds = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let ends = bounds[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let first = number(ends[0])
        let last = ends.count == 2 ? number(ends[1]) : first
        let step = bounds.count == 2 ? number(bounds[1]) : 1
        guard let first, let last, let step, first <= last, bounds.count == 1 || ends.count == 2 else {
            throw .invalidInput("-t '\(text)' is not a task range; give N, N-M or N-M:STEP with 1 <= N <= M (task ids start at 1)")
        }
        return TaskRange(first: first, last: last, step: step)
    }

    public var description: String {
        first == last ? String(first) : step == 1 ? "\(first)-\(last)" : "\(first)-\(last):\(step)"
    }
}

/// What `summary --by` groups on, and the column it names.
public enum SummaryGrouping: String, Sendable, CaseIterable {
    case owner, group, queue, host, project, account

    var column: String {
        switch self {
        case .owner: return "owner"
        case .group: return "grp"
        case .queue: return "qname"
        case .host: return "hostname"
        case .project: return "project"
        case .account: return "account"
        }
    }
}

/// One group's usage (or the total's): the sums `qacct` prints, and the job count.
public struct UsageSummary: Codable, Sendable, Equatable {
    /// The group's value for each grouping, in the order asked; empty for the total.
    public var groups: [String]
    public var jobs: Int
    public var wallclock: Int
    public var utime: Double
    public var stime: Double
    public var cpu: Double
    public var mem: Double
    public var io: Double
    public var iow: Double

    public static let zero = UsageSummary(groups: [], jobs: 0, wallclock: 0, utime: 0, stime: 0, cpu: 0, mem: 0, io: 0, iow: 0)

    /// `self` plus another group's usage, as the total.
    func adding(_ other: UsageSummary) -> UsageSummary {
        UsageSummary(groups: groups, jobs: jobs + other.jobs, wallclock: wallclock + other.wallclock, utime: utime + other.utime,
                     stime: stime + other.stime, cpu: cpu + other.cpu, mem: mem + other.mem, io: io + other.io,
                     iow: iow + other.iow)
    }
}

/// A summary: one row per group, and the total over all of them ("Total System Usage").
public struct SummaryReport: Sendable, Equatable {
    public var groupings: [SummaryGrouping]
    public var rows: [UsageSummary]
    public var total: UsageSummary
}

extension AccountingReader {
    /// The export's and the job view's statement: the matching lines in the order received.
    static func linesSQL(_ filter: AccountingFilter) -> (sql: String, arguments: StatementArguments) {
        let (clause, arguments) = filter.sql
        return ("SELECT line FROM records \(clause) ORDER BY id", arguments)
    }

    /// The summary's statement: per-group sums, ordered by the groups (one row without groupings).
    static func summarySQL(_ groupings: [SummaryGrouping], _ filter: AccountingFilter) -> (sql: String, arguments: StatementArguments) {
        let (clause, arguments) = filter.sql
        let columns = groupings.enumerated().map { "\($1.column) AS g\($0)" }
        let keys = groupings.indices.map { "g\($0)" }.joined(separator: ", ")
        // COALESCE: without GROUP BY an empty selection still gives its one row, of NULL sums.
        let sql = """
            SELECT \((columns + ["COUNT(*) AS jobs"]).joined(separator: ", ")), COALESCE(SUM(ru_wallclock), 0) AS wallclock,
                   COALESCE(SUM(ru_utime), 0.0) AS utime, COALESCE(SUM(ru_stime), 0.0) AS stime, COALESCE(SUM(cpu), 0.0) AS cpu,
                   COALESCE(SUM(mem), 0.0) AS mem, COALESCE(SUM(io), 0.0) AS io, COALESCE(SUM(iow), 0.0) AS iow
            FROM records \(clause)\(groupings.isEmpty ? "" : " GROUP BY \(keys) ORDER BY \(keys)")
            """
        return (sql, arguments)
    }

    /// Per-group sums like `qacct -o` (by owner), `-o -q` (by owner and queue) and so on, and
    /// the total; with no grouping only the total, as plain `qacct` prints it.
    public func summary(by groupings: [SummaryGrouping], _ filter: AccountingFilter) throws(BDockerError) -> SummaryReport {
        let (sql, arguments) = Self.summarySQL(groupings, filter)
        let rows: [UsageSummary]
        do {
            rows = try queue.read { db in
                try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                    UsageSummary(groups: groupings.indices.map { row["g\($0)"] }, jobs: row["jobs"], wallclock: row["wallclock"],
                                 utime: row["utime"], stime: row["stime"], cpu: row["cpu"], mem: row["mem"], io: row["io"],
                                 iow: row["iow"])
                }
            }
        } catch {
            throw .internalFault("summary from \(path) failed: \(Self.describe(error))")
        }
        if groupings.isEmpty {
            return SummaryReport(groupings: [], rows: [], total: rows.first ?? .zero)
        }
        // The total is the sum of the rows shown, so the two always agree.
        return SummaryReport(groupings: groupings, rows: rows, total: rows.reduce(UsageSummary.zero) { $0.adding($1) })
    }

    /// Calls `body` with each matching record, in the order received; returns how many.
    public func forEachRecord(_ filter: AccountingFilter,
                              _ body: (SGEAccountingRecord) throws(BDockerError) -> Void) throws(BDockerError) -> Int {
        let (sql, arguments) = Self.linesSQL(filter)
        var count = 0
        do {
            try queue.read { db in
                let lines = try String.fetchCursor(db, sql: sql, arguments: arguments)
                while let line = try lines.next() {
                    let record: SGEAccountingRecord
                    do {
                        record = try SGEAccountingRecord.parse(line)
                    } catch {
                        // Stored lines were validated on the way in: this is a damaged store.
                        throw BDockerError.internalFault("a stored record of \(path) is unreadable: \((error as? BDockerError)?.message ?? "\(error)")")
                    }
                    try body(record)
                    count += 1
                }
            }
        } catch let error as BDockerError {
            throw error
        } catch {
            throw .internalFault("reading records from \(path) failed: \(Self.describe(error))")
        }
        return count
    }
}
