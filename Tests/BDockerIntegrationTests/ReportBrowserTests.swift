import AsyncHTTPClient
import BDAPI
import BDAccounting
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import NIOCore
import Testing

/// The usage report as a person sees it: the real accounting daemon serves `/report` from a
/// store of known records, headless Chromium loads it (signing in), and every number on the
/// page must be the one Grid Engine's `qacct` computes from the store's export; every chart
/// must be drawn. The screenshot docs/accounting.md shows is this test's
/// (`BDOCKER_REPORT_SCREENSHOT=docs/images/report.png` keeps a copy).
@Suite("Usage report in a browser")
struct ReportBrowserTests {
    let files = TempDir("bdocker-reportweb")
    let config: TestConfig
    let records: [SGEAccountingRecord]
    static let user = (name: "auditor", password: "report pw 1")
    /// October 2026 (UTC); qacct reads -b/-e in local time, so it runs with TZ=UTC.
    static let since = "2026-10-01", until = "2026-11-01"
    static let qacctWindow = ["-b", "202610010000", "-e", "202610312359.59"]
    static let utc = ProcessInfo.processInfo.environment.merging(["TZ": "UTC"]) { $1 }
    static let charts = ["chart-day", "chart-day-owner", "chart-top", "chart-group", "chart-queue", "chart-host", "chart-project"]

    /// 42 jobs over October on 7 owners (one named with markup, which must show as text),
    /// 2 groups, 3 queues, 4 hosts, 3 projects; some failed, some killed; and 3 jobs just
    /// outside the window that nothing may count.
    static func makeRecords() -> [SGEAccountingRecord] {
        let october = 1_790_812_800  // 2026-10-01T00:00:00Z
        let owners = ["ann", "bob", "cyd", "dee", "eve", "fay", "<b>mal&\"lory"]
        var records = (0..<42).map { k -> SGEAccountingRecord in
            let start = october + (k * 17 % 29) * 86_400 + 3_000 * (k % 20)
            var r = SGEAccountingRecord(qname: ["all.q", "gpu.q", "long.q"][k % 3], hostname: "node\(k % 4)",
                                        group: k % 5 < 2 ? "staff" : "users", owner: owners[k % 7], jobName: "job\(k)",
                                        jobNumber: 5000 + k, account: "sge", taskNumber: 0, submissionTime: start - 60,
                                        startTime: start, endTime: start + 600 + 97 * k)
            r.ruWallclock = 600 + 97 * k
            // Owners differ (the first uses most), jobs within an owner too.
            let weight: Int = (1 + k % 6) * (7 - k % 7)
            r.cpu = Double(1_200 * weight) + Double(k) * 13.25 + 0.125
            r.ruUtime = r.cpu * 0.9
            r.ruStime = r.cpu - r.ruUtime
            r.mem = Double(k + 1) * 1_234.5
            r.maxvmem = 2_147_483_648
            r.project = ["NONE", "projA", "projB"][k / 2 % 3]
            if k % 9 == 4 { r.failed = 37; r.exitStatus = 137 }  // bdocker's quota kill
            if k % 10 == 7 { r.failed = 100 }
            if k % 11 == 3 { r.exitStatus = 143 }
            return r
        }
        for (k, start) in [october - 1, october + 31 * 86_400, october + 40 * 86_400].enumerated() {
            records.append(SGEAccountingRecord(qname: "all.q", hostname: "node0", group: "staff", owner: "outside", jobName: "x",
                                               jobNumber: 6000 + k, account: "sge", taskNumber: 0, submissionTime: start - 1,
                                               startTime: start, endTime: start + 60))
        }
        return records
    }

    init() async throws {
        let users = ReportUsersFixture.write(files, [Self.user])
        config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("accounting"))",
            "# [report]\n# users_file = /etc/bdocker/report_users": "[report]\nusers_file = \(users)",
        ])
        records = Self.makeRecords()
        let store = try BDockerDatabase.open(path: config.settings.server.database, role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: files.file("accounting"), logger: Logger(label: "test"))
        for record in records { _ = try await ledger.submit(record) }
        await ledger.close()
    }

    @Test(.requires(.chromium, .qacct))
    func everyNumberIsQacctsAndEveryChartIsDrawn() async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router())
        do {
            try await check(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func check(_ server: RunningDaemon) async throws {
        let query = "report?since=\(Self.since)&until=\(Self.until)"
        let url = "http://\(Self.user.name):\(Self.user.password.replacingOccurrences(of: " ", with: "%20"))@\(server.endpoint)/\(query)"

        // The page as the browser built it, and the page as bdocker-acct writes it: the same tables.
        let dom = try await Chromium.dumpDOM(url)
        #expect(dom.contains("<h1>Cluster usage</h1>"), "\(dom.prefix(800))")
        let page = PageTables(dom)
        let file = files.file("report.html")
        let written = try await runCommand(Repo.binDir + "/bdocker-acct", ["report", "--since", Self.since, "--until", Self.until,
                                                                           "--html", file, "--database", config.settings.server.database])
        #expect(written.status == 0, "\(written.stderr)")
        let filePage = try String(contentsOfFile: file, encoding: .utf8)
        #expect(PageTables(filePage).tables == page.tables)
        // Names are text, never markup.
        #expect(!dom.contains("<b>mal"))
        #expect(page.tables["owner"]?.rows["<b>mal&\"lory"] != nil)

        try await compareWithQacct(page)
        try await checkChartsAreDrawn(filePage, expectedBars: page)

        // The screenshot: the whole width, and not a blank page (a white 1280×2000 PNG is ~10 KB).
        let png = files.file("report.png")
        try await Chromium.screenshot(url, to: png)
        let size = try #require(Chromium.pngSize(png))
        #expect(size.width == 1280 && size.height == 2000)
        let bytes = try FileManager.default.attributesOfItem(atPath: png)[.size] as? Int ?? 0
        #expect(bytes > 60_000, "screenshot of \(bytes) bytes")
        if let keep = ProcessInfo.processInfo.environment["BDOCKER_REPORT_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: png, toPath: keep)
        }
    }

    /// Every table row and total against qacct on the export, over the same window.
    func compareWithQacct(_ page: PageTables) async throws {
        let export = files.file("export")
        let exported = try await runCommand(Repo.binDir + "/bdocker-acct", ["export", "-o", export, "--database", config.settings.server.database])
        #expect(exported.status == 0, "\(exported.stderr)")

        // qacct's job list gives the counts: jobs, failed (failed ≠ 0), killed (failed 37 or a signal's exit).
        let listed = try await Qacct.jobs(file: export, Self.qacctWindow, environment: Self.utc)
        #expect(listed.status == 0, "\(listed.stderr)")
        let jobs = QacctJob.parse(listed.stdout)
        #expect(jobs.count == 42)
        func counts(_ selected: [QacctJob]) -> [String: Double] {
            ["jobs": Double(selected.count), "failed": Double(selected.filter(\.failed).count),
             "killed": Double(selected.filter(\.killed).count)]
        }
        // qacct's sums: [WALLCLOCK, UTIME, STIME, CPU, MEMORY, IO, IOW], seconds and GB·s.
        func hours(_ sums: [Double]) -> [String: Double] {
            ["cpu_hours": sums[3] / 3600, "memory_gb_hours": sums[4] / 3600, "wallclock_hours": sums[0] / 3600]
        }
        func expectRow(_ shown: [String: String], _ expected: [String: Double], _ what: String) {
            #expect(Set(shown.keys) == Set(expected.keys), "\(what): columns \(shown.keys.sorted())")
            for (column, value) in expected {
                let number = Double(shown[column] ?? "") ?? .nan
                // The page shows two decimals.
                #expect(abs(number - value) <= 0.0051, "\(what) \(column): page \(shown[column] ?? "-"), qacct \(value)")
            }
        }

        let total = try await Qacct.table(file: export, Self.qacctWindow, environment: Self.utc)
        let totalRow = try #require(page.tables["total"]?.rows[""], "no totals table")
        expectRow(totalRow, counts(jobs).merging(hours(try #require(total[[]]))) { $1 }, "total")
        #expect(totalRow["jobs"] == "42")

        let dimensions: [(table: String, option: String, field: KeyPath<QacctJob, String>)] = [
            ("owner", "-o", \.owner), ("group", "-g", \.group), ("queue", "-q", \.queue), ("host", "-h", \.host), ("project", "-P", \.project),
        ]
        for dimension in dimensions {
            let table = try #require(page.tables[dimension.table], "no \(dimension.table) table")
            let windowed = try await Qacct.table(file: export, [dimension.option] + Self.qacctWindow, environment: Self.utc)
            var expected: [String: [Double]] = [:]
            for (key, sums) in windowed where key.count == 1 { expected[key[0].lowercased()] = sums }
            let shown = Dictionary(uniqueKeysWithValues: table.rows.filter { $0.key != "Total" }.map { ($0.key.lowercased(), $0.value) })
            #expect(Set(shown.keys) == Set(expected.keys), "\(dimension.table): page \(shown.keys.sorted()), qacct \(expected.keys.sorted())")
            for (name, sums) in expected {
                guard let row = shown[name] else { continue }
                let mine = jobs.filter { $0[keyPath: dimension.field].lowercased() == name }
                expectRow(row, counts(mine).merging(hours(sums)) { $1 }, "\(dimension.table) \(name)")
            }
            expectRow(try #require(table.rows["Total"]), counts(jobs).merging(hours(try #require(total[[]]))) { $1 }, "\(dimension.table) total")
            // Most CPU first.
            let cpu = table.order.filter { $0 != "Total" }.compactMap { Double(table.rows[$0]?["cpu_hours"] ?? "") }
            #expect(cpu == cpu.sorted(by: >), "\(dimension.table) order")
        }
        // Top users: the owners who used most, as the owner table has them.
        let top = try #require(page.tables["top"])
        let owners = try #require(page.tables["owner"])
        #expect(top.order == Array(owners.order.filter { $0 != "Total" }.prefix(10)))
        for name in top.order { #expect(top.rows[name] == owners.rows[name]) }

        // CPU hours per day and owner: each day that had jobs against qacct -o over that day.
        let daily = try #require(page.tables["day"])
        #expect(daily.order.count == 31 && daily.order.first == "2026-10-01" && daily.order.last == "2026-10-31")
        let days = Set(jobs.map(\.day))
        #expect(days.count >= 10)
        for day in days.sorted() {
            let compact = day.replacingOccurrences(of: "-", with: "")
            let perOwner = try await Qacct.table(file: export, ["-o", "-b", compact + "0000", "-e", compact + "2359.59"], environment: Self.utc)
            let row = try #require(daily.rows[day], "no row for \(day)")
            let cpu = perOwner.values.reduce(0) { $0 + $1[3] } / 3600
            #expect(abs((Double(row["cpu_hours"] ?? "") ?? .nan) - cpu) <= 0.0051, "\(day): page \(row["cpu_hours"] ?? "-"), qacct \(cpu)")
            var others = 0.0
            for (key, sums) in perOwner where key.count == 1 {
                if let column = daily.owners.firstIndex(of: key[0]) {
                    let shown = Double(row["owner\(column)"] ?? "") ?? .nan
                    #expect(abs(shown - sums[3] / 3600) <= 0.0051, "\(day) \(key[0])")
                } else {
                    others += sums[3] / 3600
                }
            }
            #expect(abs((Double(row["others"] ?? "0") ?? .nan) - others) <= 0.0051 * 3, "\(day) others")
        }
        #expect(daily.owners.count == 5)
        #expect(daily.rows.values.filter { Double($0["cpu_hours"] ?? "") == 0 }.count == 31 - days.count)
    }

    /// The written page with a measuring script added (and its policy, which forbids scripts,
    /// taken out): for each chart, how many data marks Chromium laid out and their extent.
    func checkChartsAreDrawn(_ html: String, expectedBars page: PageTables) async throws {
        let measure = """
            <script>
            const out = {};
            for (const svg of document.querySelectorAll('svg.chart')) {
              const box = svg.getBoundingClientRect();
              let n = 0, left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity, bars = 0;
              for (const mark of svg.querySelectorAll('.mark')) {
                const r = mark.getBoundingClientRect();
                if (r.width <= 0 && r.height <= 0) continue;
                n++; if (mark.classList.contains('bar')) bars++;
                left = Math.min(left, r.left); top = Math.min(top, r.top); right = Math.max(right, r.right); bottom = Math.max(bottom, r.bottom);
              }
              out[svg.id] = {svgWidth: box.width, svgHeight: box.height, marks: n, bars: bars, width: right - left, height: bottom - top};
            }
            const pre = document.createElement('pre');
            pre.id = 'drawn';
            pre.textContent = JSON.stringify(out);
            document.body.appendChild(pre);
            </script>
            """
        var harness = html.replacingOccurrences(of: #"<meta http-equiv="Content-Security-Policy"[^>]*>"#, with: "", options: .regularExpression)
        #expect(harness != html)
        harness = harness.replacingOccurrences(of: "</body>", with: measure + "</body>")
        let path = files.write("harness.html", harness)
        let dom = try await Chromium.dumpDOM("file://" + path)
        let json = try #require(dom.range(of: #"<pre id="drawn">[^<]*</pre>"#, options: .regularExpression).map { String(dom[$0]) })
        let body = json.dropFirst(#"<pre id="drawn">"#.count).dropLast("</pre>".count)
        let drawn = try #require(try JSONSerialization.jsonObject(with: Data(PageTables.unescape(String(body)).utf8)) as? [String: [String: Double]])
        #expect(Set(drawn.keys) == Set(Self.charts), "\(drawn.keys.sorted())")
        for (id, chart) in drawn {
            #expect((chart["svgWidth"] ?? 0) > 100 && (chart["svgHeight"] ?? 0) > 30, "\(id): \(chart)")
            #expect((chart["marks"] ?? 0) > 0 && (chart["width"] ?? 0) > 0 && (chart["height"] ?? 0) > 0, "\(id) has no drawn marks: \(chart)")
        }
        // One bar per row of the table beside it (fewer than the 15 a chart draws).
        for (chart, table) in [("chart-top", "top"), ("chart-group", "group"), ("chart-queue", "queue"), ("chart-host", "host"),
                               ("chart-project", "project")] {
            let rows = page.tables[table]?.order.filter { $0 != "Total" }.count ?? -1
            #expect(drawn[chart]?["bars"] == Double(rows), "\(chart): \(drawn[chart] ?? [:]), \(rows) rows")
        }
        // Both daily charts reach across the month: the first and last days with jobs are far apart.
        #expect((drawn["chart-day"]?["width"] ?? 0) > 400 && (drawn["chart-day-owner"]?["width"] ?? 0) > 400)
    }
}

/// The report's tables read back from HTML (as served, as Chromium serializes its DOM, or as
/// written): per `data-table`, each row's name → its cells by `data-col`.
struct PageTables: Equatable {
    struct Table: Equatable {
        var rows: [String: [String: String]] = [:]
        var order: [String] = []
        /// The owners of the day table's columns.
        var owners: [String] = []
    }

    var tables: [String: Table] = [:]

    init(_ html: String) {
        for table in Self.matches(#"<table class="usage[^"]*" data-table="(\w+)">(.*?)</table>"#, html) {
            var parsed = Table()
            parsed.owners = Self.matches(#"<th data-owner="([^"]*)">"#, table[2]).map { Self.unescape($0[1]) }
            for row in Self.matches(#"<tr[^>]*>(.*?)</tr>"#, table[2]) {
                var cells: [String: String] = [:]
                var ownerColumn = 0
                for cell in Self.matches(#"<td data-col="(\w+)">([^<]*)</td>"#, row[1]) {
                    if cell[1] == "owner" {
                        cells["owner\(ownerColumn)"] = cell[2]
                        ownerColumn += 1
                    } else {
                        cells[cell[1]] = cell[2]
                    }
                }
                guard !cells.isEmpty else { continue }  // the head
                let name = Self.matches(#"<th scope="row"[^>]*>([^<]*)</th>"#, row[1]).first.map { Self.unescape($0[1]) } ?? ""
                parsed.rows[name] = cells
                parsed.order.append(name)
            }
            tables[table[1]] = parsed
        }
    }

    static func matches(_ pattern: String, _ text: String) -> [[String]] {
        let regex = try! NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (0..<match.numberOfRanges).map { ns.substring(with: match.range(at: $0)) }
        }
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// One block of `qacct -j`: the fields the report counts by.
struct QacctJob {
    var owner = "", group = "", queue = "", host = "", project = "", day = ""
    var failed = false
    var killed = false

    static func parse(_ output: String) -> [QacctJob] {
        output.components(separatedBy: QacctFormat.rule + "\n").dropFirst().map { block in
            var fields: [String: String] = [:]
            for line in block.split(separator: "\n") {
                fields[String(line.prefix(13)).trimmingCharacters(in: .whitespaces)] = String(line.dropFirst(13)).trimmingCharacters(in: .whitespaces)
            }
            var job = QacctJob(owner: fields["owner"] ?? "", group: fields["group"] ?? "", queue: fields["qname"] ?? "",
                               host: fields["hostname"] ?? "", project: fields["project"] ?? "")
            let failed = Int(fields["failed"]?.split(separator: " ").first ?? "") ?? -1
            let exit = Int(fields["exit_status"]?.split(separator: " ").first ?? "") ?? -1
            job.failed = failed != 0
            job.killed = failed == 37 || exit >= 128
            // start_time in ctime form, UTC (qacct ran with TZ=UTC): "Thu Oct  1 00:50:00 2026".
            let ctime = DateFormatter()
            ctime.locale = Locale(identifier: "en_US_POSIX")
            ctime.timeZone = TimeZone(identifier: "UTC")
            ctime.dateFormat = "EEE MMM d HH:mm:ss yyyy"
            if let start = ctime.date(from: (fields["start_time"] ?? "").replacingOccurrences(of: "  ", with: " ")) {
                job.day = ReportWindow.date(Int(start.timeIntervalSince1970))
            }
            return job
        }
    }
}
