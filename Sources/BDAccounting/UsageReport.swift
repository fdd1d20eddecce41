import BDCore
import Foundation
import GRDB

/// The days a usage report covers: whole UTC days, from `since` (inclusive) to `until`
/// (exclusive), selected by start time as `qacct -b/-e` and `bdocker-acct --since/--until` do.
/// Days are UTC so the daily series matches the `usage_by_day` view.
public struct ReportWindow: Sendable, Equatable {
    public static let day = 86_400
    public static let defaultDays = 30
    /// A year and a leap day: a daily series longer than that stops being readable.
    public static let maxDays = 366

    /// UTC midnights.
    public let since: Int
    public let until: Int

    public init(since: Int, until: Int) throws(BDockerError) {
        guard since % Self.day == 0, until % Self.day == 0 else {
            throw .invalidInput("a report covers whole UTC days: give dates as YYYY-MM-DD")
        }
        guard since < until else {
            throw .invalidInput("since \(Self.date(since)) is not before until \(Self.date(until)): the window is empty")
        }
        guard (until - since) / Self.day <= Self.maxDays else {
            throw .invalidInput("the window has \((until - since) / Self.day) days; a report covers at most \(Self.maxDays)")
        }
        self.since = since
        self.until = until
    }

    /// The window from optional dates (YYYY-MM-DD, UTC) and a day count: both dates as given;
    /// one date and the count (default 30) from it or up to it; no date: the last `days` days
    /// up to and including today.
    public static func resolve(since: String?, until: String?, days: String? = nil, now: Int) throws(BDockerError) -> ReportWindow {
        let from = try since.map { text throws(BDockerError) in try midnight(text, name: "since") }
        let to = try until.map { text throws(BDockerError) in try midnight(text, name: "until") }
        var count = defaultDays
        if let days {
            guard !days.isEmpty, days.utf8.allSatisfy({ (48...57).contains($0) }), let n = Int(days), (1...maxDays).contains(n) else {
                throw .invalidInput("days '\(days)' is not a number of days from 1 to \(maxDays)")
            }
            if from != nil && to != nil {
                throw .invalidInput("give two of since, until and days: with both dates the window is already fixed")
            }
            count = n
        }
        switch (from, to) {
        case (.some(let from), .some(let to)): return try ReportWindow(since: from, until: to)
        case (.some(let from), nil): return try ReportWindow(since: from, until: from + count * day)
        case (nil, .some(let to)): return try ReportWindow(since: to - count * day, until: to)
        case (nil, nil):
            let tomorrow = (now / day + 1) * day
            return try ReportWindow(since: tomorrow - count * day, until: tomorrow)
        }
    }

    /// "2026-11-29" as its UTC midnight.
    static func midnight(_ text: String, name: String) throws(BDockerError) -> Int {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        // The formatter rolls 2026-11-31 over to December: only a date it writes back the same is one.
        guard text.count == 10, let date = formatter.date(from: text), formatter.string(from: date) == text,
              date.timeIntervalSince1970 >= 0 else {
            throw .invalidInput("\(name) '\(text.prefix(40))' is not a date; use YYYY-MM-DD (a UTC day)")
        }
        return Int(date.timeIntervalSince1970)
    }

    /// "2026-11-29" for a time (its UTC day).
    public static func date(_ time: Int) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(time)))
    }

    /// The midnight of every day in the window, in order.
    public var days: [Int] { Array(stride(from: since, to: until, by: Self.day)) }

    /// The last day included, for "from … to …".
    public var lastDay: Int { until - Self.day }

    var filter: AccountingFilter { AccountingFilter(since: since, until: until) }
}

/// The groupings a report breaks usage down by.
public enum ReportDimension: String, Sendable, CaseIterable {
    case owner, group, queue, host, project

    var grouping: SummaryGrouping {
        switch self {
        case .owner: return .owner
        case .group: return .group
        case .queue: return .queue
        case .host: return .host
        case .project: return .project
        }
    }

    public var title: String { rawValue.prefix(1).uppercased() + rawValue.dropFirst() }
}

/// What a set of jobs used. A job is **failed** when Grid Engine's `failed` is not 0 (the batch
/// system says it did not run to its end; bdocker's quota kill is 37), and **killed** when it
/// died of a signal: `failed` 37 (a limit was enforced) or an exit status of 128 + signal. A
/// quota kill is both; a job that exited non-zero by itself is neither (that is its answer).
public struct UsageFigures: Sendable, Equatable {
    public var jobs = 0
    public var failed = 0
    public var killed = 0
    /// CPU seconds.
    public var cpu: Double = 0
    /// GB·s, as the `mem` field.
    public var mem: Double = 0
    /// Seconds.
    public var wallclock = 0

    public init() {}

    public var cpuHours: Double { cpu / 3600 }
    public var memGBHours: Double { mem / 3600 }
    public var wallclockHours: Double { Double(wallclock) / 3600 }

    /// The SQL conditions of the two counts, so the definition is written once.
    static let failedSQL = "failed <> 0"
    static let killedSQL = "(failed = 37 OR exit_status >= 128)"

    static let selectSQL = """
        COUNT(*) AS jobs, COALESCE(SUM(\(failedSQL)), 0) AS failed, COALESCE(SUM(\(killedSQL)), 0) AS killed,
        COALESCE(SUM(cpu), 0.0) AS cpu, COALESCE(SUM(mem), 0.0) AS mem, COALESCE(SUM(ru_wallclock), 0) AS wallclock
        """

    init(row: Row) {
        jobs = row["jobs"]
        failed = row["failed"]
        killed = row["killed"]
        cpu = row["cpu"]
        mem = row["mem"]
        wallclock = row["wallclock"]
    }
}

/// One owner's (group's, queue's...) usage.
public struct UsageLine: Sendable, Equatable {
    public var name: String
    public var usage: UsageFigures
}

/// One UTC day: CPU seconds of the jobs started that day, in all and per owner.
public struct DailyUsage: Sendable, Equatable {
    public var day: Int
    public var cpu: Double
    public var cpuByOwner: [String: Double]
}

/// The usage report: totals, a breakdown per dimension, and the daily CPU series, for one
/// window. The daemon's `/report` and `bdocker-acct report` both build it with `fetch`.
public struct UsageReport: Sendable, Equatable {
    /// Owners drawn on their own in the per-owner series; the rest are "others".
    public static let seriesOwners = 5
    public static let topUsers = 10

    public var window: ReportWindow
    public var generatedAt: Int
    public var total: UsageFigures
    /// Per dimension, by CPU time, most first (then by name).
    public var breakdown: [ReportDimension: [UsageLine]]
    /// Every day of the window, in order, empty days included.
    public var days: [DailyUsage]

    public func lines(_ dimension: ReportDimension) -> [UsageLine] { breakdown[dimension] ?? [] }

    /// The owners who used the most CPU time.
    public var topUsers: [UsageLine] { Array(lines(.owner).prefix(Self.topUsers)) }

    /// The owners the per-owner series draws on their own.
    public var seriesOwners: [String] {
        lines(.owner).filter { $0.usage.cpu > 0 }.prefix(Self.seriesOwners).map(\.name)
    }

    /// Reads the report in one read transaction (so its parts agree), from the daemon's pool or
    /// `AccountingReader`'s read-only queue. Each query selects by `records_start`.
    public static func fetch(_ db: Database, window: ReportWindow, now: Int) throws -> UsageReport {
        let (clause, arguments) = window.filter.sql
        let total = try Row.fetchOne(db, sql: "SELECT \(UsageFigures.selectSQL) FROM records \(clause)", arguments: arguments)
            .map(UsageFigures.init(row:)) ?? UsageFigures()
        var breakdown: [ReportDimension: [UsageLine]] = [:]
        for dimension in ReportDimension.allCases {
            let column = dimension.grouping.column
            let sql = "SELECT \(column) AS name, \(UsageFigures.selectSQL) FROM records \(clause) GROUP BY \(column)"
            breakdown[dimension] = try Row.fetchAll(db, sql: sql, arguments: arguments)
                .map { UsageLine(name: $0["name"], usage: UsageFigures(row: $0)) }
                .sorted { ($0.usage.cpu, $1.name) > ($1.usage.cpu, $0.name) }
        }
        var perDay: [Int: DailyUsage] = [:]
        let daily = "SELECT start_time / \(ReportWindow.day) AS day, owner, SUM(cpu) AS cpu FROM records \(clause) GROUP BY day, owner"
        for row in try Row.fetchAll(db, sql: daily, arguments: arguments) {
            let day = (row["day"] as Int) * ReportWindow.day, owner: String = row["owner"], cpu: Double = row["cpu"]
            perDay[day, default: DailyUsage(day: day, cpu: 0, cpuByOwner: [:])].cpu += cpu
            perDay[day]!.cpuByOwner[owner, default: 0] += cpu
        }
        let days = window.days.map { perDay[$0] ?? DailyUsage(day: $0, cpu: 0, cpuByOwner: [:]) }
        return UsageReport(window: window, generatedAt: now, total: total, breakdown: breakdown, days: days)
    }
}

extension AccountingReader {
    /// The usage report of `window` from this store.
    public func usageReport(_ window: ReportWindow, now: Int = Int(Date().timeIntervalSince1970)) throws(BDockerError) -> UsageReport {
        do {
            return try queue.read { db in try UsageReport.fetch(db, window: window, now: now) }
        } catch {
            throw .internalFault("the usage report from \(path) failed: \(Self.describe(error))")
        }
    }
}
