import BDAccounting
import BDBatch
import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Logging
import Testing

/// `bdocker-acct` (the real binary) on a generated store, checked against Grid Engine's own
/// `qacct` reading the same lines.
@Suite("bdocker-acct")
struct AcctToolTests {
    let dir = TempDir("bdocker-accttool")
    var database: String { dir.file("acct.sqlite") }
    var daemonFile: String { dir.file("bdocker_accounting") }
    static let base = 1_764_403_200  // 2025-11-29T08:00:00Z
    static let owners = ["ann", "bob", "cyd"]

    /// 60 records over 3 owners, 4 hosts, 2 queues, 2 accounts, one every 7 hours.
    static let records: [SGEAccountingRecord] = (0..<60).map { (i: Int) -> SGEAccountingRecord in
        let queue = i % 2 == 0 ? "all.q" : "gpu.q"
        let account = i % 5 == 0 ? "proj1" : "sge"
        let start: Int = base + i * 7 * 3600
        return SampleAccounting.record(job: 100 + i, task: i % 3, host: "node\(i % 4)", owner: owners[i % 3],
                                       queue: queue, account: account, start: start, variant: Double(i) / 8)
    }

    init() async throws {
        let store = try BDockerDatabase.open(path: database, role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: daemonFile, logger: Logger(label: "test"))
        for record in Self.records { _ = try await ledger.submit(record) }
        await ledger.close()
    }

    func acct(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(Repo.binDir + "/bdocker-acct", arguments)
    }

    func export(_ extra: [String] = []) async throws -> String {
        let output = dir.file("export-\(UUID().uuidString)")
        let result = try await acct(["export", "--database", database, "-o", output] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return output
    }

    func exportedLines(_ extra: [String]) async throws -> [String] {
        let text = try String(contentsOfFile: try await export(extra), encoding: .utf8)
        #expect(text.hasPrefix(SGEAccountingRecord.fileHeader))
        return text.dropFirst(SGEAccountingRecord.fileHeader.count).split(separator: "\n").map(String.init)
    }

    @Test(.requires(.qacct)) func theExportIsTheDaemonsFileAndQacctReadsEveryJob() async throws {
        let file = try await export()
        #expect(try String(contentsOfFile: file, encoding: .utf8) == String(contentsOfFile: daemonFile, encoding: .utf8))
        guard FileManager.default.isExecutableFile(atPath: Qacct.path) else { return }
        for record in Self.records.prefix(12) {
            let job = try await Qacct.job(file: file, record.jobNumber)
            #expect(job["owner"] == record.owner)
            #expect(job["hostname"] == record.hostname)
            #expect(job["cpu"] == String(format: "%.3fs", record.cpu))
            #expect(job["mem"] == String(format: "%.3fGBs", record.mem))
            #expect(job["maxvmem"].flatMap(Qacct.bytes) == record.maxvmem)
            #expect(job["taskid"] == (record.taskNumber == 0 ? "undefined" : String(record.taskNumber)))
        }
    }

    /// `summary --by X --json` against `qacct -o/-h/-q/-A` on the export.
    @Test(.requires(.qacct), arguments: [("owner", "-o"), ("host", "-h"), ("queue", "-q"), ("account", "-A")])
    func summariesMatchQacct(_ by: String, _ qacctOption: String) async throws {
        let result = try await acct(["summary", "--database", database, "--by", by, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(report["by"] as? [String] == [by])
        let rows = try #require(report["rows"] as? [[String: Any]])
        let expectedGroups = Set(Self.records.map { r in
            switch by {
            case "owner": return r.owner
            case "host": return r.hostname
            case "queue": return r.qname
            default: return r.account
            }
        })
        #expect(Set(rows.compactMap { $0[by] as? String }) == expectedGroups)
        #expect(rows.reduce(0) { $0 + ($1["jobs"] as? Int ?? 0) } == Self.records.count)

        guard FileManager.default.isExecutableFile(atPath: Qacct.path) else { return }
        let qacct = try await Qacct.summary(file: try await export(), qacctOption)
        #expect(Set(qacct.keys) == expectedGroups)
        for row in rows {
            let group = try #require(row[by] as? String)
            let theirs = try #require(qacct[group])
            let ours = ["wallclock", "utime", "stime", "cpu", "mem", "io", "iow"].map { (row[$0] as? NSNumber)?.doubleValue ?? .nan }
            for (column, (a, b)) in zip(["WALLCLOCK", "UTIME", "STIME", "CPU", "MEMORY", "IO", "IOW"], zip(ours, theirs)) {
                #expect(abs(a - b) < 0.0015, "\(group) \(column): bdocker-acct \(a), qacct \(b)")
            }
        }
    }

    @Test func theSummaryTableHasQacctsColumns() async throws {
        let result = try await acct(["summary", "--database", database])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first?.split(separator: " ") == ["OWNER", "JOBS", "WALLCLOCK", "UTIME", "STIME", "CPU", "MEMORY", "IO", "IOW"])
        // Header, rule, a row per owner, a rule and the total.
        #expect(lines.count == 2 + Self.owners.count + 2)
        let total = lines.last?.split(separator: " ").map(String.init) ?? []
        #expect(total.prefix(3) == ["Total", "60", String(Self.records.reduce(0) { $0 + $1.ruWallclock })], "\(result.stdout)")
        #expect(lines[lines.count - 2].allSatisfy { $0 == "-" })
    }

    @Test func exportFilters() async throws {
        let all = Self.records.map { $0.line() }
        #expect(try await exportedLines([]) == all)
        #expect(try await exportedLines(["--owner", "bob"]) == Self.records.filter { $0.owner == "bob" }.map { $0.line() })
        #expect(try await exportedLines(["--job", "107"]) == [Self.records[7].line()])
        // Half-open by start time; epoch seconds and ISO 8601 mean the same.
        let since = Self.base + 10 * 7 * 3600, until = Self.base + 20 * 7 * 3600
        let window = Array(all[10..<20])
        #expect(try await exportedLines(["--since", String(since), "--until", String(until)]) == window)
        let iso = ISO8601DateFormatter()
        #expect(try await exportedLines(["--since", iso.string(from: Date(timeIntervalSince1970: Double(since))),
                                         "--until", iso.string(from: Date(timeIntervalSince1970: Double(until)))]) == window)
        // A day: 2025-11-29 starts at base - 8h, so it holds the records starting before 2025-11-30.
        let day = Self.records.filter { $0.startTime < Self.base + 16 * 3600 }.map { $0.line() }
        #expect(try await exportedLines(["--until", "2025-11-30"]) == day)
        #expect(try await exportedLines(["--since", "2030-01-01"]) == [])

        // To standard output as well.
        let stdout = try await acct(["export", "--database", database, "--job", "101"])
        #expect(stdout.stdout == SGEAccountingRecord.fileHeader + Self.records[1].line() + "\n")
    }

    @Test func sqlQueriesTheViewsInEveryFormat() async throws {
        let json = try await acct(["sql", "--database", database, "--format", "json",
                                   "SELECT owner, jobs, cpu, maxvmem_max FROM jobs_by_owner ORDER BY owner"])
        #expect(json.status == 0, "\(json.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["owner"] as? String } == Self.owners)
        for row in rows {
            let mine = Self.records.filter { $0.owner == row["owner"] as? String }
            #expect(row["jobs"] as? Int == mine.count)
            #expect(abs(((row["cpu"] as? NSNumber)?.doubleValue ?? 0) - mine.reduce(0) { $0 + $1.cpu }) < 1e-6)
            #expect((row["maxvmem_max"] as? NSNumber)?.doubleValue == mine.map(\.maxvmem).max())
        }
        let csv = try await acct(["sql", "--database", database, "--format", "csv",
                                  "SELECT hostname, jobs FROM jobs_by_host ORDER BY hostname"])
        #expect(csv.stdout == "hostname,jobs\nnode0,15\nnode1,15\nnode2,15\nnode3,15\n")
        let table = try await acct(["sql", "--database", database, "SELECT COUNT(*) AS pending FROM not_in_file"])
        #expect(table.stdout == "pending\n-------\n      0\n")
        let quoted = try await acct(["sql", "--database", database, "--format", "csv", "SELECT 'a,\"b' AS x"])
        #expect(quoted.stdout == "x\n\"a,\"\"b\"\n")
        // An empty result in JSON is [].
        let empty = try await acct(["sql", "--database", database, "--format", "json", "SELECT owner FROM records WHERE 0"])
        #expect(empty.stdout == "[]\n")
        // Times are ISO 8601 UTC unless --epoch asks for the numbers.
        let first = try await acct(["sql", "--database", database, "--format", "csv",
                                    "SELECT job_number, start_time FROM records ORDER BY id LIMIT 1"])
        #expect(first.stdout == "job_number,start_time\n100,2025-11-29T08:00:00Z\n", "\(first.stdout)")
        let raw = try await acct(["sql", "--database", database, "--format", "csv", "--epoch",
                                  "SELECT start_time FROM records ORDER BY id LIMIT 1"])
        #expect(raw.stdout == "start_time\n\(Self.base)\n")
    }

    @Test(arguments: ["DELETE FROM records", "UPDATE records SET cpu = 0", "INSERT INTO records (id) VALUES (1000)",
                      "DROP VIEW jobs_by_owner", "CREATE TABLE x (a)", "PRAGMA user_version = 7", "VACUUM",
                      "SELECT 1; DELETE FROM records"])
    func sqlRefusesToWrite(_ statement: String) async throws {
        let result = try await acct(["sql", "--database", database, statement])
        #expect(result.status != 0)
        #expect(result.stderr.hasPrefix("bdocker-acct: "))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stdout.isEmpty)
        let count = try await acct(["sql", "--database", database, "--format", "csv", "SELECT COUNT(*) AS n FROM records"])
        #expect(count.stdout == "n\n60\n")
    }

    @Test func errorsAreOneClearLine() async throws {
        let configDir = TempDir("bdocker-accttool-cfg")
        let working = configDir.write("working.cfg", try String(contentsOfFile: Repo.path("etc/configure_bdocker.cfg"), encoding: .utf8))
        let cases: [([String], String)] = [
            (["sql", "--database", dir.file("missing.sqlite"), "SELECT 1"], "no accounting database at"),
            (["summary", "--database", dir.file("missing.sqlite")], "no accounting database at"),
            (["sql", "--database", database, "SELEC 1"], "bad SQL"),
            (["sql", "--database", database, "SELECT nope FROM records"], "no such column"),
            (["export", "--database", database, "--since", "2026-13-01"], "--since '2026-13-01' is not a time"),
            (["export", "--database", database, "--until", "yesterday"], "--until 'yesterday' is not a time"),
            (["export", "--database", database, "--since", "2026-12-02", "--until", "2026-12-01"], "is not before --until"),
            (["summary", "--database", database, "--since", "2026-12-01", "--until", "2026-12-01"], "the window is empty"),
            (["summary", "--config", working], "configures a working daemon"),
            (["summary", "--config", configDir.file("absent.cfg")], "configuration error"),
            (["export", "--database", database, "-o", dir.file("no/such/dir/out")], "cannot create"),
        ]
        for (arguments, message) in cases {
            let result = try await acct(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.hasPrefix("bdocker-acct: ") && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
        // Not an accounting database at all.
        let other = dir.file("other.sqlite")
        _ = try await DatabaseQueue(path: other).write { db in try db.execute(sql: "CREATE TABLE t (a)") }
        let result = try await acct(["sql", "--database", other, "SELECT 1"])
        #expect(result.status != 0 && result.stderr.contains("not a bdocker accounting database"))
    }

    @Test func theConfigNamesTheDatabase() async throws {
        let configDir = TempDir("bdocker-accttool-cfg")
        let text = try String(contentsOfFile: Repo.path("etc/configure_bdocker_accounting.cfg"), encoding: .utf8)
            .replacingOccurrences(of: "database = /var/lib/bdocker/accounting.sqlite", with: "database = \(database)")
        let config = configDir.write("acct.cfg", text)
        let result = try await acct(["sql", "--config", config, "--format", "csv", "SELECT COUNT(*) AS n FROM records"])
        #expect(result.stdout == "n\n60\n", "\(result.stderr)")
    }
}
