@testable import BDAccounting
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import Testing

/// Every question of the qacct table in docs/accounting.md, asked of `bdocker-acct` on a store
/// and of Grid Engine's own `qacct` on that store's export: the answers must agree. Both run in
/// one time zone that is not UTC, since qacct reads `-b/-e` and prints times in local time.
@Suite("bdocker-acct answers qacct's questions")
struct AcctQacctTests {
    let dir = TempDir("bdocker-acctqacct")
    var database: String { dir.file("acct.sqlite") }
    /// When the store was made: the records start in the 10 days before, for `-d`.
    let now: Int
    let records: [SGEAccountingRecord]

    static let environment = ProcessInfo.processInfo.environment.merging(["TZ": "Europe/Paris"]) { $1 }
    static let hour = 3600

    /// 48 records, one every 5 hours back from half an hour ago (so every `-d` day boundary
    /// is at least 30 minutes from a start time), over 4 owners, 2 groups, 3 queues, 5 hosts,
    /// 3 projects and 3 accounts; jobs 700 and 701 are arrays of 6 tasks, job 850 ran twice.
    static func makeRecords(now: Int) -> [SGEAccountingRecord] {
        (0..<48).map { (k: Int) -> SGEAccountingRecord in
            let job = k < 12 ? 700 + k / 6 : k >= 46 ? 850 : 800 + k
            let account = k % 5 == 0 ? "grant7" : k % 2 == 0 ? "proj1" : "sge"
            var r = SampleAccounting.record(job: job, task: k < 12 ? k % 6 + 1 : 0, host: "node\(k % 5)",
                                            owner: ["ann", "bob", "cyd", "dee"][k % 4], queue: ["all.q", "gpu.q", "long.q"][k % 3],
                                            account: account, start: start(k, now: now), variant: Double(k) / 7)
            r.group = (k / 3) % 2 == 0 ? "staff" : "users"
            r.project = ["NONE", "projA", "projB"][(k / 4) % 3]
            if k % 7 == 3 { r.failed = 100; r.exitStatus = 137 }
            if k % 11 == 5 { r.exitStatus = 1 }
            if k % 9 == 4 { r.grantedPE = "mpi"; r.slots = 4 }
            return r
        }
    }

    static func start(_ k: Int, now: Int) -> Int { now - 1800 - k * 5 * hour }

    init() async throws {
        now = Int(Date().timeIntervalSince1970)
        records = Self.makeRecords(now: now)
        let store = try BDockerDatabase.open(path: database, role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: dir.file("bdocker_accounting"), logger: Logger(label: "test"))
        for record in records { _ = try await ledger.submit(record) }
        await ledger.close()
    }

    func acct(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(Repo.binDir + "/bdocker-acct", arguments + ["--database", database], environment: Self.environment)
    }

    func export(_ extra: [String] = []) async throws -> String {
        let output = dir.file("export-\(UUID().uuidString)")
        let result = try await acct(["export", "-o", output] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return output
    }

    /// Record k's start time as qacct writes times: CCYYMMDDhhmm.SS, local time.
    func qacctTime(_ k: Int) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "Europe/Paris")
        formatter.dateFormat = "yyyyMMddHHmm.ss"
        return formatter.string(from: Date(timeIntervalSince1970: Double(Self.start(k, now: now))))
    }

    /// One question: qacct's options, bdocker-acct's, and which records the answer covers,
    /// worked out here from the records themselves. `@Tk` stands for record k's start time.
    struct Question: Sendable, CustomTestStringConvertible {
        let qacct: [String]
        let ours: [String]
        let selects: @Sendable (_ record: SGEAccountingRecord, _ startOf: (Int) -> Int, _ now: Int) -> Bool
        var testDescription: String { "qacct \(qacct.joined(separator: " "))" }

        init(_ qacct: [String], _ ours: [String],
             selects: @escaping @Sendable (SGEAccountingRecord, (Int) -> Int, Int) -> Bool = { _, _, _ in true }) {
            self.qacct = qacct
            self.ours = ours
            self.selects = selects
        }
    }

    static let staffGID = getgrnam("staff").map { String($0.pointee.gr_gid) }
    static let day = 86_400

    static let questions: [Question] = [
        Question([], ["--by", "none"]),
        Question(["-o"], ["--by", "owner"]),
        Question(["-g"], ["--by", "group"]),
        Question(["-q"], ["--by", "queue"]),
        Question(["-h"], ["--by", "host"]),
        Question(["-P"], ["--by", "project"]),
        Question(["-A"], ["--by", "account"]),
        Question(["-o", "ann"], ["-o", "ann"]) { r, _, _ in r.owner == "ann" },
        Question(["-g", "staff"], ["-g", "staff", "--by", "group"]) { r, _, _ in r.group == "staff" },
        Question(["-q", "gpu.q"], ["-q", "gpu.q", "--by", "host,queue"]) { r, _, _ in r.qname == "gpu.q" },
        Question(["-q", "all.q@node1"], ["-q", "all.q@node1", "--by", "host,queue"]) { r, _, _ in
            r.qname == "all.q" && r.hostname == "node1"
        },
        Question(["-h", "NODE2"], ["-H", "NODE2", "--by", "host"]) { r, _, _ in r.hostname == "node2" },
        Question(["-P", "projA"], ["-P", "projA", "--by", "project"]) { r, _, _ in r.project == "projA" },
        Question(["-A", "proj1"], ["-A", "proj1", "--by", "account"]) { r, _, _ in r.account == "proj1" },
        Question(["-o", "ann", "-q", "all.q"], ["-o", "ann", "-q", "all.q", "--by", "host,queue,owner"]) { r, _, _ in
            r.owner == "ann" && r.qname == "all.q"
        },
        Question(["-g", "-o", "-P"], ["--by", "group,owner,project"]),
        Question(["-q", "long.q", "-A", "sge"], ["-q", "long.q", "-A", "sge", "--by", "host,queue,account"]) { r, _, _ in
            r.qname == "long.q" && r.account == "sge"
        },
        Question(["-o", "-d", "3"], ["-d", "3"]) { r, _, now in r.startTime >= now - 3 * day },
        // -b and -e include their own second: records 10 and 30 start exactly there.
        Question(["-b", "@T30", "-e", "@T10"], ["-b", "@T30", "-e", "@T10", "--by", "none"]) { r, start, _ in
            r.startTime >= start(30) && r.startTime <= start(10)
        },
        Question(["-o", "-b", "@T30", "-d", "2"], ["-b", "@T30", "-d", "2"]) { r, start, _ in
            r.startTime >= start(30) && r.startTime <= start(30) + 2 * day
        },
        Question(["-e", "@T10", "-d", "2"], ["-e", "@T10", "-d", "2", "--by", "none"]) { r, start, _ in
            r.startTime >= start(10) - 2 * day && r.startTime <= start(10)
        },
        Question(["-h", "-o", "ann", "-d", "6"], ["-u", "ann", "--days", "6", "--by", "host,owner"]) { r, _, now in
            r.owner == "ann" && r.startTime >= now - 6 * day
        },
    ] + (staffGID.map { gid in
        // qacct -g takes a numeric group id too.
        [Question(["-g", gid], ["-g", gid, "--by", "group"]) { r, _, _ in r.group == "staff" }]
    } ?? [])

    func substituted(_ arguments: [String]) -> [String] {
        arguments.map { $0.hasPrefix("@T") ? qacctTime(Int($0.dropFirst(2))!) : $0 }
    }

    @Test(.requires(.qacct), arguments: questions)
    func summaryAnswersAsQacct(_ question: Question) async throws {
        let result = try await acct(["summary", "--json"] + substituted(question.ours))
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let by = try #require(report["by"] as? [String])
        let rows = try #require(report["rows"] as? [[String: Any]])
        let total = try #require(report["total"] as? [String: Any])
        let columns = ["wallclock", "utime", "stime", "cpu", "mem", "io", "iow"]
        func numbers(_ row: [String: Any]) -> [Double] { columns.map { (row[$0] as? NSNumber)?.doubleValue ?? .nan } }

        // Which records the answer covers, worked out from the records: a question that
        // selects nothing, or everything when it should narrow, would prove nothing.
        let selected = records.filter { question.selects($0, { Self.start($0, now: now) }, now) }
        #expect(!selected.isEmpty)
        #expect(total["jobs"] as? Int == selected.count, "\(result.stdout)")
        #expect((total["wallclock"] as? Int) == selected.reduce(0) { $0 + $1.ruWallclock })
        #expect(abs(((total["cpu"] as? NSNumber)?.doubleValue ?? 0) - selected.reduce(0) { $0 + $1.cpu }) < 1e-6)

        // qacct's answer on the export: the same groups with the same sums (it prints three
        // decimals), or the same total.
        let qacct = try await Qacct.table(file: try await export(), substituted(question.qacct), environment: Self.environment)
        func key(_ groups: [String]) -> [String] { groups.map { $0.lowercased() } }  // qacct -h NODE2 prints NODE2
        let ours: [[String]: [Double]] = by.isEmpty
            ? [[]: numbers(total)]
            : Dictionary(uniqueKeysWithValues: rows.map { row in (key(by.map { row[$0] as? String ?? "?" }), numbers(row)) })
        let theirs = Dictionary(uniqueKeysWithValues: qacct.map { (key($0.key), $0.value) })
        #expect(Set(ours.keys) == Set(theirs.keys), "bdocker-acct \(ours.keys.sorted { "\($0)" < "\($1)" }), qacct \(theirs.keys)")
        for (group, values) in ours {
            guard let expected = theirs[group] else { continue }
            for (column, (a, b)) in zip(columns, zip(values, expected)) {
                #expect(abs(a - b) < 0.0015, "\(group) \(column): bdocker-acct \(a), qacct \(b)")
            }
        }
        // The total row is the sum of the groups.
        for (i, column) in columns.enumerated() where !by.isEmpty {
            let sum = theirs.values.reduce(0) { $0 + $1[i] }
            #expect(abs(numbers(total)[i] - sum) < 0.0015 * Double(max(1, theirs.count)), "total \(column)")
        }
    }

    /// `bdocker-acct job` prints what `qacct -j` prints, line for line (trailing blanks aside).
    @Test(.requires(.qacct), arguments: [
        ([], []), (["700"], ["700"]), (["700", "-t", "2-5:2"], ["700", "-t", "2-5:2"]), (["701", "-t", "3"], ["701", "-t", "3"]),
        (["850"], ["850"]), (["820"], ["820"]), (["700", "-o", "cyd"], ["700", "-o", "cyd"]),
        (["-q", "gpu.q", "-d", "4"], ["-q", "gpu.q", "-d", "4"]),
    ])
    func jobViewIsQacctsView(_ qacctArguments: [String], _ ourArguments: [String]) async throws {
        let file = try await export()
        let theirs = try await Qacct.jobs(file: file, qacctArguments, environment: Self.environment)
        #expect(theirs.status == 0, "\(theirs.stderr)")
        let ours = try await acct(["job"] + ourArguments)
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stdout == theirs.stdout)
        // Guard against two empty answers agreeing.
        let blocks = ours.stdout.components(separatedBy: QacctFormat.rule + "\n").count - 1
        #expect(blocks > 0)
        if ourArguments.first == "700" && ourArguments.count == 1 { #expect(blocks == 6) }
        if ourArguments.contains("2-5:2") {
            #expect(ours.stdout.contains("taskid       2\n") && ours.stdout.contains("taskid       4\n") && blocks == 2)
        }
        if ourArguments == ["850"] { #expect(blocks == 2) }
    }

    @Test func jobViewFieldsAreReadable() async throws {
        let result = try await acct(["job", "817"])  // k = 17: failed 100, exit 137
        #expect(result.status == 0, "\(result.stderr)")
        let record = try #require(records.first { $0.jobNumber == 817 })
        var fields: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") where !line.hasPrefix("=") {
            fields[String(line.prefix(13)).trimmingCharacters(in: .whitespaces)] = String(line.dropFirst(13))
        }
        #expect(fields["owner"] == record.owner && fields["jobnumber"] == "817" && fields["taskid"] == "undefined")
        #expect(fields["failed"] == "100 : assumedly after job")
        #expect(fields["exit_status"] == "137                  (Killed)")
        #expect(fields["cpu"] == String(format: "%.3fs", record.cpu))
        #expect(fields["maxvmem"].flatMap(Qacct.bytes) == record.maxvmem)
        let ctime = DateFormatter()
        ctime.locale = Locale(identifier: "en_US_POSIX")
        ctime.timeZone = TimeZone(identifier: "Europe/Paris")
        ctime.dateFormat = "EEE MMM d HH:mm:ss yyyy"
        let start = try #require(fields["start_time"]).replacingOccurrences(of: "  ", with: " ")
        #expect(ctime.date(from: start).map { Int($0.timeIntervalSince1970) } == record.startTime, "\(start)")
    }

    @Test func jobJSONIsTheStoredRecords() async throws {
        let result = try await acct(["job", "700", "-t", "3-6", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let decoded = try JSONDecoder().decode([SGEAccountingRecord].self, from: Data(result.stdout.utf8))
        // As stored: the line's six decimals.
        let stored = try records.filter { $0.jobNumber == 700 && $0.taskNumber >= 3 }.map { try SGEAccountingRecord.parse($0.line()) }
        #expect(decoded == stored)
        #expect(decoded.count == 4)
    }

    @Test func noSuchJobIsOneLineAsInQacct() async throws {
        let cases: [([String], String)] = [
            (["job", "999"], "job id 999 not found"),
            (["job", "-j", "999", "--json"], "job id 999 not found"),
            (["job", "820", "-t", "3"], "job id 820 task 3 not found"),
            (["job", "700", "-u", "nobody"], "job id 700 not found among the records the filters select"),
            (["job", "-A", "nobody"], "no job record matches the filters"),
        ]
        for (arguments, message) in cases {
            let result = try await acct(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments)")
            #expect(result.stderr == "bdocker-acct: \(message)\n", "\(arguments)")
        }
        guard Requirement.qacct.isMet else { return }
        // qacct agrees there is nothing to show.
        let file = try await export()
        for arguments in [["999"], ["820", "-t", "3"]] {
            let theirs = try await runCommand(Qacct.path, ["-f", file, "-j"] + arguments)
            #expect(theirs.status != 0 && theirs.stderr.contains("not found"), "\(arguments): \(theirs.stderr)")
        }
    }

    /// The export takes the same filters: its lines are exactly the selected records'.
    @Test func exportFiltersAsSummaryDoes() async throws {
        func lines(_ arguments: [String]) async throws -> [String] {
            let text = try String(contentsOfFile: try await export(arguments), encoding: .utf8)
            return text.dropFirst(SGEAccountingRecord.fileHeader.count).split(separator: "\n").map(String.init)
        }
        let cases: [([String], (SGEAccountingRecord) -> Bool)] = [
            (["-g", "staff", "-P", "projA"], { $0.group == "staff" && $0.project == "projA" }),
            (["-H", "NODE3", "-q", "gpu.q"], { $0.hostname == "node3" && $0.qname == "gpu.q" }),
            (["-A", "grant7", "-u", "ann"], { $0.account == "grant7" && $0.owner == "ann" }),
            (["-j", "701", "-t", "2-6:2"], { $0.jobNumber == 701 && [2, 4, 6].contains($0.taskNumber) }),
            (["--days", "2"], { $0.startTime >= self.now - 2 * Self.day }),
            (["-b", qacctTime(20), "-e", qacctTime(20)], { $0.startTime == Self.start(20, now: self.now) }),
        ]
        for (arguments, selects) in cases {
            let expected = records.filter(selects).map { $0.line() }
            #expect(!expected.isEmpty && expected.count < records.count, "\(arguments)")
            #expect(try await lines(arguments) == expected, "\(arguments)")
        }
    }

    @Test func badQuestionsAreOneLineErrors() async throws {
        let cases: [([String], String)] = [
            (["summary", "-t", "3"], "-t/--task 3 needs a job number"),
            (["export", "-t", "1-2"], "-t/--task 1-2 needs a job number"),
            (["job", "-t", "2"], "-t/--task 2 needs a job number"),
            (["job", "700", "-t", "0"], "-t '0' is not a task range"),
            (["job", "700", "-t", "5-2"], "-t '5-2' is not a task range"),
            (["job", "700", "-t", "x"], "-t 'x' is not a task range"),
            (["summary", "-d", "0"], "-d/--days '0' is not a number of days"),
            (["summary", "-d", "-3"], "-d/--days '-3' is not a number of days"),
            (["summary", "--days", "two"], "-d/--days 'two' is not a number of days"),
            (["summary", "-b", "202612010000", "-e", "202611010000"], "-b 202612010000 is after -e 202611010000: the window is empty"),
            (["export", "--since", "2026-12-01", "--until", "2026-11-01"], "is not before --until 2026-11-01: the window is empty"),
            (["summary", "-b", "202611010000", "-e", "202612010000", "-d", "3"], "the window is already fixed"),
            (["summary", "-b", "202611010000", "--since", "2026-11-01"], "give --since or -b/--begin, not both"),
            (["summary", "-e", "202613010000"], "-e/--end '202613010000' is not a time"),
            (["summary", "-b", "202602300000"], "-b/--begin '202602300000' is not a time"),
            (["summary", "-b", "1764403200"], "-b/--begin '1764403200' is not a time"),
            (["summary", "--by", "owner,owner"], "--by 'owner,owner'"),
            (["summary", "--by", "department"], "--by 'department'"),
            (["job", "700", "-j", "701"], "give the job once"),
            (["summary", "-o", "ann", "--owner", "bob"], "give the owner once"),
            (["summary", "-q", "all.q@node1", "-H", "node2"], "name different hosts"),
            (["summary", "--owner", ""], "--owner is empty"),
        ]
        for (arguments, message) in cases {
            let result = try await acct(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments): \(result.stdout)")
            #expect(result.stderr.hasPrefix("bdocker-acct: ") && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
    }

    @Test func summaryTableEndsWithTheTotal() async throws {
        let grouped = try await acct(["summary", "--by", "queue,owner", "-P", "projB"])
        #expect(grouped.status == 0, "\(grouped.stderr)")
        let lines = grouped.stdout.split(separator: "\n").map(String.init)
        let selected = records.filter { $0.project == "projB" }
        let pairs = Set(selected.map { [$0.qname, $0.owner] })
        #expect(lines.first?.split(separator: " ") == ["QUEUE", "OWNER", "JOBS", "WALLCLOCK", "UTIME", "STIME", "CPU", "MEMORY", "IO", "IOW"])
        #expect(lines.count == 2 + pairs.count + 2)
        #expect(lines.dropFirst(2).prefix(pairs.count).map { Array($0.split(separator: " ").prefix(2).map(String.init)) }
            == pairs.sorted { $0.lexicographicallyPrecedes($1) })
        let total = lines.last?.split(separator: " ").map(String.init) ?? []
        #expect(total.prefix(3) == ["Total", String(selected.count), String(selected.reduce(0) { $0 + $1.ruWallclock })])

        // Without groups: the total alone, under qacct's title.
        let alone = try await acct(["summary", "--by", "none"])
        let aloneLines = alone.stdout.split(separator: "\n").map(String.init)
        #expect(aloneLines.first == "Total System Usage")
        #expect(aloneLines.count == 4)
        #expect(aloneLines.last?.split(separator: " ").first.map(String.init) == String(records.count))

        // Nothing selected: no rows, a zero total (JSON too).
        let none = try await acct(["summary", "-u", "nobody", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(none.stdout.utf8)) as? [String: Any])
        #expect((report["rows"] as? [Any])?.isEmpty == true)
        #expect((report["total"] as? [String: Any])?["jobs"] as? Int == 0)
    }
}

/// qacct's time form and the pieces the job view is made of, without a store.
@Suite("qacct forms")
struct QacctFormTests {
    func local(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int = 0) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let date = calendar.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi, second: s))!
        return Int(date.timeIntervalSince1970)
    }

    @Test func qacctTimes() {
        let now = local(2026, 12, 5, 7, 0)
        #expect(QacctTime.parse("202511290800", now: now) == local(2025, 11, 29, 8, 0))
        #expect(QacctTime.parse("202511290800.07", now: now) == local(2025, 11, 29, 8, 0, 7))
        #expect(QacctTime.parse("2511290800", now: now) == local(2025, 11, 29, 8, 0))
        #expect(QacctTime.parse("6912310000", now: now) == local(2069, 12, 31, 0, 0))  // YY < 70 is 20YY
        #expect(QacctTime.parse("7001020000", now: now) == local(1970, 1, 2, 0, 0))
        #expect(QacctTime.parse("11290800", now: now) == local(2026, 11, 29, 8, 0))  // this year
        for bad in ["", "2025112908", "20251129080", "202511290860", "202513010000", "202502290000", "202511292400",
                    "202511290800.7", "202511290800.60", "2025-11-29", "1764403200", "20251129080a"] {
            #expect(QacctTime.parse(bad, now: now) == nil, "\(bad)")
        }
    }

    @Test func taskRanges() throws {
        #expect(try TaskRange.parse("3") == TaskRange(first: 3, last: 3))
        #expect(try TaskRange.parse("2-9") == TaskRange(first: 2, last: 9))
        #expect(try TaskRange.parse("1-10:3") == TaskRange(first: 1, last: 10, step: 3))
        #expect(try TaskRange.parse("1-10:3").description == "1-10:3")
        for bad in ["", "0", "-3", "3-", "5-2", "1-4:0", "2:2", "a", "1-2-3"] {
            #expect(throws: BDockerError.self, "\(bad)") { try TaskRange.parse(bad) }
        }
    }

    @Test func memoryAndStatus() {
        #expect(QacctFormat.memory(0) == "0.000B")
        #expect(QacctFormat.memory(1023) == "1023.000B")
        #expect(QacctFormat.memory(1024) == "1.000KB")
        #expect(QacctFormat.memory(1_073_741_824) == "1.000GB")
        #expect(QacctFormat.memory(0x1p50) == "1024.000TB")
        #expect(QacctFormat.failed(0) == "0")
        #expect(QacctFormat.failed(37) == "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit")
        #expect(QacctFormat.failed(55) == "55  : invalid execution state")
        #expect(QacctFormat.exitStatus(1) == "1")
        #expect(QacctFormat.exitStatus(143) == "143                  (Terminated)")
    }
}
