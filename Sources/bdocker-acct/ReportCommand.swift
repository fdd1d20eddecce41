import ArgumentParser
import BDAccounting
import BDCore
import Foundation

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The usage report: per owner, group, queue, host and project, and CPU hours per day, as an HTML page or CSV.",
        discussion: """
            The page the accounting daemon serves at /report, as a file: charts drawn in the page (SVG), \
            the numbers in tables, the CSV tables inside it. Days are UTC; jobs count by start time. \
            Without dates: the last 30 days up to today; --until is not included.
            """)

    @OptionGroup var store: StoreOptions

    @Option(help: "First day, YYYY-MM-DD (UTC).")
    var since: String?

    @Option(help: "The day after the last, YYYY-MM-DD (UTC; not included).")
    var until: String?

    @Option(help: "Days in the window (default 30): from --since, up to --until, or up to today.")
    var days: String?

    @Option(help: "Write the HTML page to FILE (replaced as a whole when complete).")
    var html: String?

    @Option(help: ArgumentHelp("Print one table as CSV: \(ReportCSV.Table.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "table"))
    var csv: String?

    func run() async throws {
        do {
            guard (html == nil) != (csv == nil) else {
                throw BDockerError.invalidInput("give --html FILE or --csv TABLE (one of them)")
            }
            let table = try csv.map { name throws(BDockerError) in try ReportCSV.Table.named(name) }
            let window = try ReportWindow.resolve(since: since, until: until, days: days, now: Int(Date().timeIntervalSince1970))
            let report = try store.reader().usageReport(window)
            if let table {
                print(ReportCSV.render(report, table), terminator: "")
                return
            }
            if let html {
                try Self.write(ReportPage.html(report, links: .embedded), to: html)
                let jobs = report.total.jobs == 1 ? "1 job" : "\(report.total.jobs) jobs"
                let message = "bdocker-acct: report of \(jobs) from \(ReportWindow.date(window.since)) "
                    + "to \(ReportWindow.date(window.lastDay)) written to \(html)\n"
                FileHandle.standardError.write(Data(message.utf8))
            }
        } catch {
            CommandLineExit.fail(error)
        }
    }

    /// Into a temporary file beside the target, renamed when complete, as `export -o`.
    static func write(_ text: String, to path: String) throws(BDockerError) {
        let partial = path + ".partial-\(getpid())"
        guard FileManager.default.createFile(atPath: partial, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw .invalidInput("cannot create \(partial): \(String(cString: strerror(errno)))")
        }
        guard rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: partial)
            throw .invalidInput("cannot write \(path): \(reason)")
        }
    }
}
