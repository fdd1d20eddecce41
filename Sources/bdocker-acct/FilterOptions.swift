import ArgumentParser
import BDAccounting
import BDCore
import Foundation

/// The filters `summary`, `export` and `job` share: the questions `qacct` asks, under qacct's
/// short spellings where they are free. Two are not: `-h` is help (ArgumentParser's and every
/// bdocker command's), so host is `-H`; `export` keeps `-o` for its output file, so owner is
/// `-u` (qacct's synonym) everywhere and `-o` too in `summary` and `job`.
struct FilterOptions: ParsableArguments {
    @Option(name: [.customLong("owner"), .customShort("u")], help: "Only this owner's jobs (qacct -o/-u).")
    var owner: String?

    @Option(name: [.customLong("group"), .customShort("g")], help: "Only jobs of this group, by name or numeric id (qacct -g).")
    var group: String?

    @Option(name: [.customLong("queue"), .customShort("q")],
            help: "Only jobs of this cluster queue, or of one queue instance as QUEUE@HOST (qacct -q; no patterns).")
    var queue: String?

    @Option(name: [.customLong("host"), .customShort("H")],
            help: "Only jobs that ran on this host; case does not matter (qacct -h; -h is help here).")
    var host: String?

    @Option(name: [.customLong("project"), .customShort("P")], help: "Only jobs of this project (qacct -P).")
    var project: String?

    @Option(name: [.customLong("account"), .customShort("A")], help: "Only jobs of this account (qacct -A).")
    var account: String?

    @Option(name: [.customLong("job"), .customShort("j")], help: "Only this job number (qacct -j N).")
    var job: Int?

    @Option(name: [.customLong("task"), .customShort("t")],
            help: "With a job: only these array tasks, N, N-M or N-M:STEP (qacct -t).")
    var task: String?

    @Option(help: "Jobs started at or after this time: 2026-11-29 (UTC), 2026-11-29T10:00:00Z, or epoch seconds.")
    var since: String?

    @Option(help: "Jobs started before this time (same forms).")
    var until: String?

    @Option(name: [.customLong("begin"), .customShort("b")],
            help: "Jobs started at or after this time, as qacct -b: [[CC]YY]MMDDhhmm[.SS] in local time, or 2026-11-29 (UTC) or 2026-11-29T10:00:00Z.")
    var begin: String?

    @Option(name: [.customLong("end"), .customShort("e")],
            help: "Jobs started at or before this time, inclusive as qacct -e (the forms of -b).")
    var end: String?

    @Option(name: [.customLong("days"), .customShort("d")], parsing: .unconditional,
            help: "Jobs started in the last N days; with -b/--since the N days from then, with -e/--until the N days up to then (qacct -d).")
    var days: String?

    /// The filter these options ask for. `shortOwner` is the `-o` of `summary` and `job`,
    /// `jobArgument` the job number `job` takes as its argument.
    func filter(shortOwner: String? = nil, jobArgument: Int? = nil,
                now: Int = Int(Date().timeIntervalSince1970)) throws(BDockerError) -> AccountingFilter {
        var filter = try window(now: now)
        filter.owner = try Self.once("owner", [("-o", shortOwner), ("--owner", owner)])
        filter.job = try Self.once("job", [("the job argument", jobArgument), ("-j", job)])
        if let group = try Self.nonEmpty("--group", group) {
            // qacct -g takes a numeric id too; a number that is no group's id is a name.
            let isNumber = group.utf8.allSatisfy { (48...57).contains($0) }
            filter.group = isNumber ? Int(group).flatMap { GroupDatabase.name(gid: $0) } ?? group : group
        }
        filter.host = try Self.nonEmpty("--host", host)
        if let queue = try Self.nonEmpty("--queue", queue) {
            // QUEUE@HOST: one queue instance, as qacct -q all.q@node1 (host ignoring case, as -h).
            let parts = queue.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            filter.queue = parts[0]
            if parts.count == 2 {
                guard !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw .invalidInput("--queue '\(queue)' is not QUEUE or QUEUE@HOST")
                }
                if let host = filter.host, host.lowercased() != parts[1].lowercased() {
                    throw .invalidInput("--queue \(queue) and --host \(host) name different hosts: no job ran on both")
                }
                filter.host = filter.host ?? parts[1]
            }
        }
        filter.project = try Self.nonEmpty("--project", project)
        filter.account = try Self.nonEmpty("--account", account)
        if let task {
            // As in qacct: task ids number the tasks of one array job.
            guard filter.job != nil else {
                throw .invalidInput("-t/--task \(task) needs a job number (-j N, or `job N`): task ids are per job, as in qacct")
            }
            filter.tasks = try TaskRange.parse(task)
        }
        return filter
    }

    /// `since` (inclusive) and `until` (exclusive) from --since/--until, -b/-e and -d.
    private func window(now: Int) throws(BDockerError) -> AccountingFilter {
        if since != nil, begin != nil { throw .invalidInput("give --since or -b/--begin, not both") }
        if until != nil, end != nil { throw .invalidInput("give --until or -e/--end, not both") }
        var from: (value: Int, text: String)?
        var to: (value: Int, text: String, inclusive: Bool)?
        if let since { from = (try Self.epoch(since, option: "--since"), "--since \(since)") }
        if let begin { from = (try Self.qacctTime(begin, option: "-b/--begin", now: now), "-b \(begin)") }
        if let until { to = (try Self.epoch(until, option: "--until"), "--until \(until)", false) }
        // qacct's -e is the last start time included; the filter's bound is the first excluded.
        if let end { to = (try Self.qacctTime(end, option: "-e/--end", now: now) + 1, "-e \(end)", true) }
        var filter = AccountingFilter(since: from?.value, until: to?.value)
        if let days {
            let day = 86_400
            // 100 000 days is past any record; the bound keeps the arithmetic far from overflow.
            guard days.utf8.allSatisfy({ (48...57).contains($0) }), let n = Int(days), (1...100_000).contains(n) else {
                throw .invalidInput("-d/--days '\(days)' is not a number of days; give a whole number from 1")
            }
            // qacct -d: the last N days; from -b on, or up to -e; with both, already fixed.
            switch (from, to) {
            case (.some(let from), .some(let to)):
                throw .invalidInput("-d/--days with both a start (\(from.text)) and an end (\(to.text)): "
                    + "the window is already fixed; give two of the three")
            case (.some(let from), nil): filter.until = from.value + n * day + 1
            case (nil, .some(let to)): filter.since = to.value - 1 - n * day
            case (nil, nil): filter.since = now - n * day
            }
        }
        // An empty window is a mistake, not a question with no answer.
        if let from, let to, from.value >= to.value {
            throw .invalidInput("\(from.text) is \(to.inclusive ? "after" : "not before") \(to.text): the window is empty")
        }
        return filter
    }

    /// --since and --until: ISO 8601 or epoch seconds.
    static func epoch(_ text: String, option: String) throws(BDockerError) -> Int {
        if !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), let seconds = Int(text) {
            return seconds
        }
        guard let seconds = iso(text) else {
            throw .invalidInput("\(option) '\(text)' is not a time; use 2026-11-29 (UTC midnight), 2026-11-29T10:00:00Z, "
                + "2026-11-29T10:00:00+01:00 or epoch seconds")
        }
        return seconds
    }

    /// -b and -e: qacct's form, or ISO 8601 (digits are qacct's form here, never epoch seconds:
    /// 2511290800 is 2025-11-29 08:00 to qacct).
    static func qacctTime(_ text: String, option: String, now: Int) throws(BDockerError) -> Int {
        let digits = text.utf8.allSatisfy { (48...57).contains($0) || $0 == UInt8(ascii: ".") }
        guard let seconds = digits ? QacctTime.parse(text, now: now) : iso(text) else {
            throw .invalidInput("\(option) '\(text)' is not a time; use [[CC]YY]MMDDhhmm[.SS] in local time as qacct "
                + "(202611291000), 2026-11-29 (UTC midnight) or 2026-11-29T10:00:00Z")
        }
        return seconds
    }

    static func iso(_ text: String) -> Int? {
        let dateOnly = ISO8601DateFormatter()
        dateOnly.formatOptions = [.withFullDate]
        dateOnly.timeZone = TimeZone(identifier: "UTC")
        let dateTime = ISO8601DateFormatter()
        dateTime.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = text.count == 10 ? dateOnly.date(from: text) : dateTime.date(from: text) ?? fractional.date(from: text)
        return parsed.map { Int($0.timeIntervalSince1970.rounded(.down)) }
    }

    static func nonEmpty(_ option: String, _ value: String?) throws(BDockerError) -> String? {
        if value?.isEmpty == true { throw .invalidInput("\(option) is empty") }
        return value
    }

    /// A value that two spellings may give: given once, or twice alike.
    static func once<T: Equatable>(_ what: String, _ spellings: [(String, T?)]) throws(BDockerError) -> T? {
        let given = spellings.filter { $0.1 != nil }
        if let first = given.first, let other = given.dropFirst().first(where: { $0.1 != first.1 }) {
            throw .invalidInput("\(first.0) \(first.1.map { "\($0)" } ?? "") and \(other.0) \(other.1.map { "\($0)" } ?? "") "
                + "give different \(what)s; give the \(what) once")
        }
        if let empty = given.first(where: { ($0.1 as? String)?.isEmpty == true }) {
            throw .invalidInput("\(empty.0) is empty")
        }
        return given.first?.1
    }
}
