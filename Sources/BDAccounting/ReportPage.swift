import Foundation

/// The usage report as one self-contained HTML page: inline CSS, charts as inline SVG, every
/// number also in a table, no script and nothing fetched (clusters are offline). The daemon
/// serves it at `/report`; `bdocker-acct report --html` writes the same page to a file.
///
/// Tables carry `data-table` (total, day, top, owner, group, queue, host, project) and their
/// cells `data-col`, so a test can read the page back.
public enum ReportPage {
    /// Where the CSV links of the page go.
    public enum CSVLinks: Sendable {
        /// To the daemon's `report.csv` beside the page, for the same window.
        case server
        /// Into the page itself (data: URLs with a download name), for a page saved as a file.
        case embedded
    }

    /// Bars drawn per breakdown chart; the rest are one "others" bar.
    static let chartBars = 15

    /// The policy for the page: styles inline, images only as data:, the form to itself, no
    /// script at all. The daemon also sends it as a header.
    public static let contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'"

    public static func html(_ report: UsageReport, links: CSVLinks) -> String {
        let window = report.window
        let from = ReportWindow.date(window.since), to = ReportWindow.date(window.lastDay)
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="\(contentSecurityPolicy)">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>bdocker usage \(from) to \(to)</title>
            <style>\(style)</style>
            </head>
            <body>
            <header>
            <h1>Cluster usage</h1>
            <p class="window">Jobs started from <time datetime="\(from)">\(from)</time> to <time datetime="\(to)">\(to)</time> \
            (UTC days; \(window.days.count) day\(window.days.count == 1 ? "" : "s")), as stored by the bdocker accounting daemon. \
            Generated \(Markup.escape(timestamp(report.generatedAt))).</p>

            """
        if case .server = links {
            page += """
                <form method="get" action="report"><label>since <input type="date" name="since" value="\(from)"></label> \
                <label>until (not included) <input type="date" name="until" value="\(ReportWindow.date(window.until))"></label> \
                <button type="submit">Show</button></form>

                """
        }
        page += "</header>\n<main>\n"
        page += section("totals", "Totals", table: totalTable(report))

        // The daily series: all jobs, then the owners who used most, each on its own line.
        let days = report.window.days
        let owners = report.seriesOwners
        var perOwner = owners.enumerated().map { i, owner in
            ReportChart.Series(name: owner, values: report.days.map { ($0.cpuByOwner[owner] ?? 0) / 3600 },
                               color: ReportChart.palette[i % ReportChart.palette.count])
        }
        let others = report.days.map { day in day.cpuByOwner.filter { !owners.contains($0.key) }.values.reduce(0, +) / 3600 }
        if others.contains(where: { $0 > 0 }) {
            perOwner.append(ReportChart.Series(name: "others", values: others, color: ReportChart.othersColor))
        }
        let all = ReportChart.Series(name: "all jobs", values: report.days.map { $0.cpu / 3600 }, color: ReportChart.palette[0])
        page += section("daily", "CPU hours per day",
                        charts: [ReportChart.dailyColumns(id: "chart-day", title: "CPU hours per day", days: days, series: [all], unit: "CPU h"),
                                 ReportChart.dailyLines(id: "chart-day-owner", title: "CPU hours per day and owner", days: days,
                                                        series: perOwner, unit: "CPU h")],
                        table: dayTable(report, owners: owners, others: perOwner.count > owners.count ? others : nil),
                        csv: [csvLink(report, .day, links, "per day"), csvLink(report, .dayOwner, links, "per day and owner")])

        page += section("top", "Top users", charts: [barChart("chart-top", "CPU hours of the top users", report.topUsers)],
                        table: usageTable("top", "Owner", report.topUsers, total: nil))
        for dimension in ReportDimension.allCases {
            let lines = report.lines(dimension)
            // The owners' chart is the top users'.
            let charts = dimension == .owner ? [] : [barChart("chart-\(dimension.rawValue)", "CPU hours per \(dimension.rawValue)", lines)]
            page += section(dimension.rawValue, "Per \(dimension.rawValue)", charts: charts,
                            table: usageTable(dimension.rawValue, dimension.title, lines, total: report.total),
                            csv: [csvLink(report, ReportCSV.Table(rawValue: dimension.rawValue)!, links, "per \(dimension.rawValue)")])
        }
        page += """
            <footer><p><b>CPU h</b>: CPU time of the job's containers (the record's <code>cpu</code>) in hours. \
            <b>Memory GB·h</b>: the record's <code>mem</code> (GB·s) in hours. <b>Wallclock h</b>: <code>ru_wallclock</code> in hours. \
            <b>Failed</b>: jobs whose <code>failed</code> is not 0. <b>Killed</b>: jobs that died of a signal, \
            <code>failed</code> 37 (a limit enforced, as bdocker's quota kill records it) or an exit status of 128 + signal. \
            Jobs count in the window by their start time, as with <code>qacct -b/-e</code>.</p></footer>
            </main>
            </body>
            </html>

            """
        return page
    }

    // MARK: - Parts

    static func section(_ id: String, _ title: String, charts: [String] = [], table: String, csv: [String] = []) -> String {
        var html = "<section id=\"\(id)\">\n<h2>\(Markup.escape(title))</h2>\n"
        if !charts.isEmpty { html += "<div class=\"charts\">\n" + charts.joined(separator: "\n") + "\n</div>\n" }
        html += table
        if !csv.isEmpty { html += "<p class=\"csv\">CSV: " + csv.joined(separator: " · ") + "</p>\n" }
        return html + "</section>\n"
    }

    static func barChart(_ id: String, _ title: String, _ lines: [UsageLine]) -> String {
        var items = lines.prefix(chartBars).map { (label: $0.name, value: $0.usage.cpuHours) }
        if lines.count > chartBars {
            let rest = lines.dropFirst(chartBars)
            items.append((label: "others (\(rest.count))", value: rest.reduce(0) { $0 + $1.usage.cpuHours }))
        }
        return ReportChart.bars(id: id, title: title, items: items, unit: "CPU h")
    }

    static let usageColumns: [(col: String, title: String)] = [
        ("jobs", "Jobs"), ("failed", "Failed"), ("killed", "Killed"), ("cpu_hours", "CPU h"), ("memory_gb_hours", "Memory GB·h"),
        ("wallclock_hours", "Wallclock h"),
    ]

    static func cells(_ u: UsageFigures) -> String {
        let values = [String(u.jobs), String(u.failed), String(u.killed), ReportChart.number(u.cpuHours),
                      ReportChart.number(u.memGBHours), ReportChart.number(u.wallclockHours)]
        return zip(usageColumns, values).map { "<td data-col=\"\($0.col)\">\($1)</td>" }.joined()
    }

    static func totalTable(_ report: UsageReport) -> String {
        "<table class=\"usage\" data-table=\"total\">\n<thead><tr>" + usageColumns.map { "<th>\($0.title)</th>" }.joined()
            + "</tr></thead>\n<tbody><tr>" + cells(report.total) + "</tr></tbody>\n</table>\n"
    }

    static func usageTable(_ name: String, _ title: String, _ lines: [UsageLine], total: UsageFigures?) -> String {
        var html = "<table class=\"usage\" data-table=\"\(name)\">\n<thead><tr><th>\(Markup.escape(title))</th>"
            + usageColumns.map { "<th>\($0.title)</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        if lines.isEmpty {
            html += "<tr><td colspan=\"\(usageColumns.count + 1)\" class=\"empty\">no jobs in this window</td></tr>\n"
        }
        for line in lines {
            html += "<tr><th scope=\"row\" data-col=\"name\">\(Markup.escape(line.name))</th>" + cells(line.usage) + "</tr>\n"
        }
        html += "</tbody>\n"
        if let total {
            html += "<tfoot><tr class=\"total\"><th scope=\"row\">Total</th>" + cells(total) + "</tr></tfoot>\n"
        }
        return html + "</table>\n"
    }

    static func dayTable(_ report: UsageReport, owners: [String], others: [Double]?) -> String {
        var html = "<table class=\"usage daily\" data-table=\"day\">\n<thead><tr><th>Day</th><th>CPU h</th>"
            + owners.map { "<th data-owner=\"\(Markup.escape($0))\">\(Markup.escape(Markup.label($0, max: 16)))</th>" }.joined()
            + (others == nil ? "" : "<th>others</th>") + "</tr></thead>\n<tbody>\n"
        for (d, day) in report.days.enumerated() {
            html += "<tr><th scope=\"row\" data-col=\"name\">\(ReportWindow.date(day.day))</th>"
                + "<td data-col=\"cpu_hours\">\(ReportChart.number(day.cpu / 3600))</td>"
                + owners.map { "<td data-col=\"owner\">\(ReportChart.number((day.cpuByOwner[$0] ?? 0) / 3600))</td>" }.joined()
                + (others.map { "<td data-col=\"others\">\(ReportChart.number($0[d]))</td>" } ?? "") + "</tr>\n"
        }
        return html + "</tbody>\n</table>\n"
    }

    static func csvLink(_ report: UsageReport, _ table: ReportCSV.Table, _ links: CSVLinks, _ text: String) -> String {
        let name = ReportCSV.fileName(report, table)
        switch links {
        case .server:
            let href = "report.csv?by=\(table.rawValue)&since=\(ReportWindow.date(report.window.since))"
                + "&until=\(ReportWindow.date(report.window.until))"
            return "<a class=\"csv\" href=\"\(Markup.escape(href))\" download=\"\(name)\">\(Markup.escape(text))</a>"
        case .embedded:
            let body = ReportCSV.render(report, table).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            return "<a class=\"csv\" href=\"data:text/csv;charset=utf-8,\(body)\" download=\"\(name)\">\(Markup.escape(text))</a>"
        }
    }

    static func timestamp(_ time: Int) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(time)))
    }

    static let style = """
        body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}\
        h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:3px}\
        p.window{color:#555;margin:0 0 10px}form{margin:8px 0}form label{margin-right:12px}\
        table.usage{border-collapse:collapse;margin:8px 0;font-size:.9em}\
        table.usage th,table.usage td{padding:3px 10px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}\
        table.usage th[scope=row],table.usage thead th:first-child{text-align:left;max-width:22em;overflow:hidden;text-overflow:ellipsis}\
        table.usage thead th{background:#f2f2f2}table.usage tfoot th,table.usage tfoot td{font-weight:bold;border-top:2px solid #999}\
        table.daily{font-size:.8em}td.empty{color:#777;text-align:left}\
        .charts{display:flex;flex-wrap:wrap;gap:16px}svg.chart{border:1px solid #eee;background:#fcfcfc}\
        svg text{font-family:"DejaVu Sans",Arial,sans-serif;font-size:11px;fill:#333}svg text.tick,svg text.value{fill:#666;font-size:10px}\
        p.csv{font-size:.85em}footer{margin-top:32px;font-size:.8em;color:#555}
        """
}
