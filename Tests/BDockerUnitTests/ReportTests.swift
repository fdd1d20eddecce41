import AsyncHTTPClient
import BDAPI
@testable import BDAccounting
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// The usage report's data, page and CSV: figures from a store of known records, the window,
/// escaping of names that come from the records, and defused CSV cells.
@Suite("Usage report")
struct ReportTests {
    let dir = TempDir("bdocker-report")
    var database: String { dir.file("acct.sqlite") }
    let records: [SGEAccountingRecord]
    /// 2026-11-01T00:00:00Z; the window is November 2026.
    static let november = 1_793_491_200
    static let day = 86_400
    static let window = try! ReportWindow(since: november, until: november + 30 * day)

    /// 12 jobs in November over 3 owners, 2 groups, 2 queues, 3 hosts, 2 projects; job 4 killed
    /// by the quota (failed 37, exit 137), job 7 failed (failed 100), job 9 exited 1 (neither),
    /// job 10 killed by a signal without failing (exit 143); and one job before and one after
    /// the window, which no figure may count.
    init() async throws {
        var list = (1...12).map { k -> SGEAccountingRecord in
            var r = SampleAccounting.record(job: 900 + k, host: "node\(k % 3)", owner: ["ann", "bob", "cyd"][k % 3],
                                            queue: k % 2 == 0 ? "all.q" : "gpu.q", start: Self.november + (k % 5) * Self.day + 3600 * k)
            r.group = k % 4 == 0 ? "staff" : "users"
            r.project = k % 3 == 0 ? "projA" : "NONE"
            r.ruWallclock = 600 * k
            if k == 4 { r.failed = 37; r.exitStatus = 137 }
            if k == 7 { r.failed = 100 }
            if k == 9 { r.exitStatus = 1 }
            if k == 10 { r.exitStatus = 143 }
            return r
        }
        list.append(SampleAccounting.record(job: 990, owner: "early", start: Self.november - 1))
        list.append(SampleAccounting.record(job: 991, owner: "late", start: Self.november + 30 * Self.day))
        records = list
        let store = try BDockerDatabase.open(path: dir.file("acct.sqlite"), role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: dir.file("accounting"), logger: Logger(label: "test"))
        for record in list { _ = try await ledger.submit(record) }
        await ledger.close()
    }

    var inWindow: [SGEAccountingRecord] {
        records.filter { $0.startTime >= Self.window.since && $0.startTime < Self.window.until }
    }

    @Test func figuresAreTheRecordsSums() throws {
        let report = try AccountingReader(path: database).usageReport(Self.window, now: Self.november)
        let selected = inWindow
        #expect(selected.count == 12)
        #expect(report.total.jobs == 12)
        #expect(report.total.failed == 2)  // 37 and 100
        #expect(report.total.killed == 2)  // 37/137 and 143
        #expect(abs(report.total.cpu - selected.reduce(0) { $0 + $1.cpu }) < 1e-6)
        #expect(abs(report.total.mem - selected.reduce(0) { $0 + $1.mem }) < 1e-6)
        #expect(report.total.wallclock == selected.reduce(0) { $0 + $1.ruWallclock })

        let owners = Dictionary(uniqueKeysWithValues: report.lines(.owner).map { ($0.name, $0.usage) })
        #expect(Set(owners.keys) == ["ann", "bob", "cyd"])
        for (owner, usage) in owners {
            let mine = selected.filter { $0.owner == owner }
            #expect(usage.jobs == mine.count)
            #expect(abs(usage.cpu - mine.reduce(0) { $0 + $1.cpu }) < 1e-6)
        }
        // Most CPU first.
        let cpus = report.lines(.host).map(\.usage.cpu)
        #expect(cpus == cpus.sorted(by: >))
        #expect(report.lines(.group).map(\.name).sorted() == ["staff", "users"])
        #expect(report.lines(.project).first { $0.name == "projA" }?.usage.jobs == 4)
        #expect(report.topUsers.count == 3)

        // Every day of the window, the jobs of each on it.
        #expect(report.days.count == 30 && report.days.first?.day == Self.november)
        for day in report.days {
            let started = selected.filter { $0.startTime / Self.day * Self.day == day.day }
            #expect(abs(day.cpu - started.reduce(0) { $0 + $1.cpu }) < 1e-6)
            #expect(day.cpuByOwner.values.reduce(0, +) == day.cpu)
        }
        #expect(report.days.filter { $0.cpu > 0 }.count == 5)
    }

    @Test func theWindowIsWholeUTCDays() throws {
        let now = Self.november + 10 * Self.day + 5000  // 2026-11-11 01:23 UTC
        let last30 = try ReportWindow.resolve(since: nil, until: nil, now: now)
        #expect(last30.until == Self.november + 11 * Self.day && last30.days.count == 30)
        let nov = try ReportWindow.resolve(since: "2026-11-01", until: "2026-12-01", now: now)
        #expect(nov == Self.window)
        #expect(try ReportWindow.resolve(since: "2026-11-01", until: nil, days: "7", now: now).until == Self.november + 7 * Self.day)
        #expect(try ReportWindow.resolve(since: nil, until: "2026-12-01", days: "1", now: now).since == Self.november + 29 * Self.day)
        let refused: [(String?, String?, String?, String)] = [
            ("2026-11-31", nil, nil, "is not a date"),
            ("yesterday", nil, nil, "is not a date"),
            ("2026-11-05", "2026-11-05", nil, "the window is empty"),
            ("2026-12-01", "2026-11-01", nil, "the window is empty"),
            ("2024-01-01", "2026-01-01", nil, "at most 366"),
            (nil, nil, "0", "is not a number of days"),
            (nil, nil, "400", "is not a number of days"),
            ("2026-11-01", "2026-11-03", "2", "give two of"),
        ]
        for (since, until, days, words) in refused {
            #expect { try ReportWindow.resolve(since: since, until: until, days: days, now: now) } throws: { error in
                (error as? BDockerError)?.httpStatus == 400 && (error as? BDockerError)?.message.contains(words) == true
            }
        }
    }

    /// Names come from the records, so from users: nothing they hold becomes markup.
    @Test func namesAreEscapedInTablesAndCharts() async throws {
        let hostile = "<script>alert(1)</script>\"'&x"
        let store = try BDockerDatabase.open(path: dir.file("hostile.sqlite"), role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: dir.file("hostile-accounting"), logger: Logger(label: "test"))
        var r = SampleAccounting.record(job: 1, host: "<img src=x onerror=alert(2)>", owner: hostile, start: Self.november + 60)
        r.project = "</svg><svg onload=alert(3)>"
        _ = try await ledger.submit(r)
        await ledger.close()
        let report = try AccountingReader(path: dir.file("hostile.sqlite")).usageReport(Self.window, now: Self.november)
        for links in [ReportPage.CSVLinks.server, .embedded] {
            let page = ReportPage.html(report, links: links)
            #expect(!page.contains("<script"))
            #expect(!page.contains("<img"))
            #expect(!page.contains("<svg onload"))
            #expect(!page.contains("\"'&x"))
            #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;x"))
            #expect(page.contains("&lt;/svg&gt;&lt;svg onload=alert(3)&gt;"))
            // Every chart is there and closed: 2 daily, the top users, group, queue, host, project.
            #expect(page.components(separatedBy: "<svg ").count - 1 == 7)
            #expect(page.components(separatedBy: "</svg>").count - 1 == 7)
        }
    }

    @Test func csvCellsAreQuotedAndDefused() throws {
        #expect(ReportCSV.cell("ann") == "ann")
        #expect(ReportCSV.cell("=HYPERLINK(\"http://x\")") == "\"'=HYPERLINK(\"\"http://x\"\")\"")
        #expect(ReportCSV.cell("+1") == "'+1" && ReportCSV.cell("-2") == "'-2" && ReportCSV.cell("@SUM(A1)") == "'@SUM(A1)")
        #expect(ReportCSV.cell("a,b") == "\"a,b\"")

        let report = try AccountingReader(path: database).usageReport(Self.window, now: Self.november)
        let owner = ReportCSV.render(report, .owner).split(separator: "\n")
        #expect(owner.first == "owner,jobs,failed,killed,cpu_hours,memory_gb_hours,wallclock_hours")
        #expect(owner.count == 4)
        let hours = owner.dropFirst().compactMap { Double($0.split(separator: ",")[4]) }.reduce(0, +)
        #expect(abs(hours - report.total.cpuHours) < 1e-5)
        #expect(ReportCSV.render(report, .day).split(separator: "\n").count == 31)
        #expect(ReportCSV.render(report, .dayOwner).split(separator: "\n").count
                == 1 + report.days.reduce(0) { $0 + $1.cpuByOwner.count })
        #expect(throws: BDockerError.self) { try ReportCSV.Table.named("nope") }
    }

    /// `bdocker-acct report` writes the page (its CSV links inside it) or prints a table.
    @Test func theCommandWritesThePage() async throws {
        let file = dir.file("report.html")
        let result = try await runCommand(Repo.binDir + "/bdocker-acct",
                                          ["report", "--since", "2026-11-01", "--until", "2026-12-01", "--html", file, "--database", database])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("report of 12 jobs from 2026-11-01 to 2026-11-30 written to \(file)"), "\(result.stderr)")
        let page = try String(contentsOfFile: file, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("data:text/csv;charset=utf-8,"))
        #expect(!page.contains("report.csv?"))

        let csv = try await runCommand(Repo.binDir + "/bdocker-acct",
                                       ["report", "--since", "2026-11-01", "--csv", "queue", "--database", database])
        #expect(csv.status == 0, "\(csv.stderr)")
        #expect(csv.stdout.hasPrefix("queue,jobs,") && csv.stdout.contains("\nall.q,6,") && csv.stdout.contains("\ngpu.q,6,"), "\(csv.stdout)")

        for (arguments, words) in [(["report"], "give --html FILE or --csv TABLE"),
                                   (["report", "--csv", "owner", "--since", "2026-13-01"], "is not a date")] {
            let refused = try await runCommand(Repo.binDir + "/bdocker-acct", arguments + ["--database", database])
            #expect(refused.status != 0 && refused.stderr.contains(words), "\(refused.stderr)")
        }
    }
}

/// `/report` on the accounting daemon: off unless `[report] users_file` is set, then only for
/// its users (HTTP Basic, bcrypt as htpasswd -B writes it).
@Suite("Usage report over HTTP")
struct ReportHTTPTests {
    let files = TempDir("bdocker-reporthttp")

    func config(usersFile: String?) throws -> TestConfig {
        var replacing = ["bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("accounting"))"]
        // The sample's [report] section, commented out, switched on.
        if let usersFile { replacing["# [report]\n# users_file = /etc/bdocker/report_users"] = "[report]\nusers_file = \(usersFile)" }
        let config = try TestConfig(role: .accounting, replacing: replacing)
        #expect(config.settings.report.usersFile == usersFile)
        return config
    }

    func get(_ server: RunningDaemon, _ path: String, user: String? = nil, password: String = "") async throws
        -> (status: Int, headers: [String: String], body: String) {
        var request = HTTPClientRequest(url: "http://\(server.endpoint)\(path)")
        if let user {
            request.headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 4 << 20))
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return (Int(response.status.code), headers, body)
    }

    func withDaemon(_ config: TestConfig, _ body: (RunningDaemon) async throws -> Void) async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router())
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func withoutUsersThereIsNoReport() async throws {
        try await withDaemon(try config(usersFile: nil)) { server in
            for path in ["/report", "/report.csv?by=owner"] {
                let reply = try await get(server, path, user: "ann", password: "x")
                #expect(reply.status == 404, "\(path): \(reply.body)")
                #expect(reply.headers["www-authenticate"] == nil)
            }
        }
    }

    @Test func onlyTheFilesUsersGetIt() async throws {
        let users = ReportUsersFixture.write(files, [("auditor", "correct horse"), ("boss", "s3cret:with:colons")])
        try await withDaemon(try config(usersFile: users)) { server in
            for (user, password) in [(nil, ""), ("auditor", "wrong"), ("nobody", "correct horse"), ("auditor", "")] as [(String?, String)] {
                let reply = try await get(server, "/report", user: user, password: password)
                #expect(reply.status == 401, "\(user ?? "-"): \(reply.body)")
                #expect(reply.headers["www-authenticate"]?.hasPrefix("Basic realm=\"bdocker usage report\"") == true)
                #expect(!reply.body.contains("Cluster usage"))
            }
            let page = try await get(server, "/report?since=2026-11-01&until=2026-12-01", user: "auditor", password: "correct horse")
            #expect(page.status == 200, "\(page.body)")
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            #expect(page.body.contains("<h1>Cluster usage</h1>") && page.body.contains("href=\"report.csv?by=owner&amp;since=2026-11-01&amp;until=2026-12-01\""))

            let csv = try await get(server, "/report.csv?by=host&days=7", user: "boss", password: "s3cret:with:colons")
            #expect(csv.status == 200, "\(csv.body)")
            #expect(csv.headers["content-type"] == "text/csv; charset=utf-8")
            #expect(csv.headers["content-disposition"]?.hasPrefix("attachment; filename=\"usage-host-") == true)
            #expect(csv.body.hasPrefix("host,jobs,failed,killed,"))

            let bad = try await get(server, "/report?since=2026-02-30", user: "auditor", password: "correct horse")
            #expect(bad.status == 400 && bad.body.contains("is not a date"), "\(bad.body)")
            let badTable = try await get(server, "/report.csv?by=secrets", user: "auditor", password: "correct horse")
            #expect(badTable.status == 400 && badTable.body.contains("is not a report table"), "\(badTable.body)")
        }
    }

    /// A users file the daemon cannot trust, or cannot read, stops it with file, section and key.
    @Test func aBadUsersFileStopsTheDaemonNamingIt() throws {
        let good = ReportUsersFixture.write(files, [("auditor", "pw")])
        let line = try String(contentsOfFile: good, encoding: .utf8).split(separator: "\n")[1]  // after the comment
        let cases: [(String, String)] = [
            (files.write("open", try String(contentsOfFile: good, encoding: .utf8), mode: 0o644), "others may not read it"),
            (files.write("groupwritable", try String(contentsOfFile: good, encoding: .utf8), mode: 0o660), "group may not write it"),
            (files.write("plain", "auditor:secret\n", mode: 0o600), "line 1: the password of 'auditor' is not a bcrypt hash"),
            (files.write("twice", "# x\n\n\(line)\n\(line)\n", mode: 0o600), "line 4: 'auditor' appears twice"),
            (files.write("empty", "# nobody yet\n", mode: 0o600), "names no user"),
            (files.file("missing"), "No such file"),
        ]
        let link = files.file("link")
        symlink(good, link)
        for (path, words) in cases + [(link, "not a regular file")] {
            let config = try config(usersFile: path)
            let settings = config.settings
            #expect(settings.report.usersFile == path)
            let daemon = try Daemon(settings: settings, logger: Logger(label: "test"))
            #expect {
                _ = try daemon.router()
            } throws: { error in
                let text = "\(error)"
                return (error as? ConfigError)?.section == "report" && (error as? ConfigError)?.key == "users_file"
                    && text.contains(settings.file) && text.contains(words)
            }
        }
    }

    /// `bdockerd --check-config` reads the users file as the daemon does.
    @Test func checkConfigReadsTheUsersFile() async throws {
        let socket = try loopbackSocket(listening: false)
        close(socket.fd)  // a free port for the check's listener test
        func check(_ users: String) async throws -> CommandResult {
            let config = try config(usersFile: users)
            try String(contentsOfFile: config.configPath, encoding: .utf8).replacingOccurrences(of: "port = 5001", with: "port = \(socket.port)")
                .write(toFile: config.configPath, atomically: false, encoding: .utf8)
            return try await runCommand(Repo.binDir + "/bdockerd", ["--config", config.configPath, "--check-config"])
        }
        let good = try await check(ReportUsersFixture.write(files, [("auditor", "pw"), ("boss", "pw2")]))
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("usage report: /report for 2 users of \(files.file("report_users"))"), "\(good.stdout)")
        let bad = try await check(files.write("bad_users", "auditor:plain\n", mode: 0o600))
        #expect(bad.status == 78, "\(bad.stderr)")
        #expect(bad.stderr.contains("[report] users_file") && bad.stderr.contains("line 1: the password of 'auditor' is not a bcrypt hash"),
                "\(bad.stderr)")
        #expect(!bad.stderr.contains("plain"), "the file's secret is not echoed: \(bad.stderr)")
    }

    @Test func theReportSectionIsChecked() throws {
        let base = "[resource]\nrole = accounting\n[server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /x\n"
        let relative = try INIFile(path: "t.cfg", text: base + "[report]\nusers_file = report_users\n")
        #expect {
            try SettingsLoader.settings(from: relative)
        } throws: { error in
            (error as? ConfigError)?.section == "report" && (error as? ConfigError)?.key == "users_file"
                && "\(error)".contains("t.cfg:8: [report] users_file: 'report_users' must be an absolute path")
        }
        let off = try SettingsLoader.settings(from: INIFile(path: "t.cfg", text: base))
        #expect(off.report.usersFile == nil)
        let working = try INIFile(path: "w.cfg", text: "[resource]\nrole = working\n[server]\n[batch]\ncontroller = SGEWNController\n"
            + "[credentials]\n[dockerAPI]\nbase_url = unix:///var/run/docker.sock\n[report]\nusers_file = /etc/bdocker/report_users\n")
        #expect(try SettingsLoader.settings(from: working).warnings.contains { $0.contains("[report] is read by the accounting daemon only") })
    }
}

/// The sign-in throttle's arithmetic, on a clock the test moves: at most five failed
/// sign-ins an address in any 60 s.
@Suite("Usage report: sign-in throttle")
struct LoginThrottleTests {
    let t0 = ContinuousClock.now
    func at(_ seconds: Int) -> ContinuousClock.Instant { t0 + .seconds(seconds) }

    @Test func fiveFailuresLockAnAddressUntilTheOldestLeavesTheWindow() {
        let throttle = LoginThrottle(policy: .init(maxFailures: 5, window: .seconds(60)))
        for k in 0..<4 {
            #expect(!throttle.failed("10.0.0.1", now: at(k)))
            #expect(throttle.wait(for: "10.0.0.1", now: at(k)) == nil)
        }
        #expect(throttle.failed("10.0.0.1", now: at(4)))
        #expect(throttle.wait(for: "10.0.0.1", now: at(4)) == .seconds(56))
        #expect(throttle.wait(for: "10.0.0.2", now: at(4)) == nil)
        #expect(throttle.wait(for: "10.0.0.1", now: at(59)) == .seconds(1))
        // The first failure has left the window: one more try, and its failure locks again
        // until the second one leaves.
        #expect(throttle.wait(for: "10.0.0.1", now: at(60)) == nil)
        #expect(throttle.failed("10.0.0.1", now: at(60)))
        #expect(throttle.wait(for: "10.0.0.1", now: at(60)) == .seconds(1))
        #expect(throttle.wait(for: "10.0.0.1", now: at(61)) == nil)
    }

    @Test func aSuccessClearsTheAddress() {
        let throttle = LoginThrottle(policy: .init(maxFailures: 2, window: .seconds(60)))
        throttle.failed("a", now: at(0))
        throttle.succeeded("a")
        #expect(!throttle.failed("a", now: at(1)))
        #expect(throttle.wait(for: "a", now: at(1)) == nil)
        #expect(throttle.failed("a", now: at(2)))
        #expect(throttle.wait(for: "a", now: at(2)) != nil)
    }

    @Test func theTableOfAddressesIsBounded() {
        let throttle = LoginThrottle(policy: .init(maxFailures: 1, window: .seconds(60), maxAddresses: 3))
        for (k, address) in ["a", "b", "c", "d"].enumerated() { throttle.failed(address, now: at(k)) }
        // "a" failed longest ago and went; the three latest are still held off.
        #expect(throttle.wait(for: "a", now: at(4)) == nil)
        for address in ["b", "c", "d"] { #expect(throttle.wait(for: address, now: at(4)) != nil, "\(address)") }
    }
}
