import ArgumentParser
import BDCommandLine
import BDAccounting
import BDConfig
import BDCore
import Foundation

@main
struct BDockerAcct: AsyncParsableCommand {
    /// Argument errors in one line, as every other failure (BDCommandLine).
    static func main() async { await mainWithOneLineErrors(Array(CommandLine.arguments.dropFirst())) }

    static let configuration = CommandConfiguration(
        commandName: "bdocker-acct",
        abstract: "Read the bdocker accounting store (export, summaries, jobs, audits).",
        discussion: """
            The database is opened read-only: an auditor needs read access to it (and to its \
            -wal and -shm files while the daemon runs), nothing more. summary, job and export \
            answer the questions qacct answers, with its options (docs/accounting.md has the table).
            """,
        version: BDockerVersion.current,
        subcommands: [Export.self, Summary.self, Job.self, SQL.self, Report.self])
}

/// Where the accounting database is: `--database`, else `[server] database` of `--config`.
struct StoreOptions: ParsableArguments {
    static let defaultConfig = "/etc/configure_bdocker_accounting.cfg"

    @Option(help: "The accounting daemon's SQLite database.")
    var database: String?

    @Option(help: "The accounting daemon's configuration, for its [server] database (default: $BDOCKER_CONF_FILE, else \(defaultConfig)).")
    var config: String?

    func reader() throws(BDockerError) -> AccountingReader {
        try AccountingReader(path: databasePath())
    }

    func databasePath() throws(BDockerError) -> String {
        if let database { return database }
        let path = config ?? ProcessInfo.processInfo.environment[SettingsLoader.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
            ?? Self.defaultConfig
        let settings: Settings
        do {
            settings = try SettingsLoader.load(path: path)
        } catch {
            throw .invalidInput("configuration error: \(error) (or give --database PATH)")
        }
        guard settings.role == .accounting else {
            throw .invalidInput("\(path) configures a \(settings.role.rawValue) daemon; give the accounting daemon's configuration or --database PATH")
        }
        return settings.server.database
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the records as an SGE accounting file (`qacct -f FILE` reads it).",
        discussion: """
            Records come in the order they were received, after the 4 header lines Grid Engine writes. \
            The filters are those of summary; the owner is -u/--owner here, -o being the output file.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case sge
    }

    @OptionGroup var store: StoreOptions
    @OptionGroup var filters: FilterOptions

    @Option(help: "Output format.")
    var format: Format = .sge

    @Option(name: .shortAndLong, help: "Write to FILE (replaced as a whole when complete) instead of standard output.")
    var output: String?

    func run() async throws {
        do {
            let filter = try filters.filter()
            let reader = try store.reader()
            guard let output else {
                _ = try reader.exportSGE(filter, to: .standardOutput)
                return
            }
            // Into a temporary file beside the target, renamed when complete: a failed export
            // never leaves a partial accounting file behind.
            let partial = output + ".partial-\(getpid())"
            let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw BDockerError.invalidInput("cannot create \(partial): \(String(cString: strerror(errno)))")
            }
            let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            let count: Int
            do {
                count = try reader.exportSGE(filter, to: handle)
                try handle.close()
            } catch {
                try? FileManager.default.removeItem(atPath: partial)
                throw error
            }
            guard rename(partial, output) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: partial)
                throw BDockerError.invalidInput("cannot write \(output): \(reason)")
            }
            FileHandle.standardError.write(Data("bdocker-acct: \(count) record\(count == 1 ? "" : "s") written to \(output)\n".utf8))
        } catch {
            CommandLineExit.fail(error)
        }
    }
}

struct SQL: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql",
        abstract: "Run one read-only query (SELECT, WITH, ...) for an audit.",
        discussion: """
            Tables: records (one row per job run; see migrations/accounting/0001_init.sql). Views: \
            jobs_by_owner, jobs_by_host, usage_by_day, not_in_file. Example: \
            bdocker-acct sql "SELECT * FROM jobs_by_owner ORDER BY cpu DESC LIMIT 10"
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, csv, json
    }

    @OptionGroup var store: StoreOptions

    @Option(help: "Output format.")
    var format: Format = .table

    @Flag(help: "Show times (columns named *_time or *_at) as epoch seconds, not ISO 8601 UTC.")
    var epoch = false

    @Argument(help: "The query.")
    var query: String

    func run() async throws {
        do {
            var result = try store.reader().query(query)
            if !epoch { result = Self.readableTimes(result) }
            switch format {
            case .table:
                let rows = result.rows.map { $0.map(\.text) }
                let numeric = Set(result.columns.indices.filter { i in
                    !result.rows.isEmpty && result.rows.allSatisfy { $0[i].isNumber || $0[i] == .null }
                })
                print(TextTable(header: result.columns, rows: rows, rightAligned: numeric, rule: "-").render(), terminator: "")
            case .csv:
                print(OutputFormat.csv(header: result.columns, rows: result.rows.map { $0.map(\.text) }), terminator: "")
            case .json:
                print(try OutputFormat.json(result.rows.map { row in
                    Dictionary(uniqueKeysWithValues: zip(result.columns, row.map(JSONCell.init)))
                }))
            }
        } catch {
            CommandLineExit.fail(error)
        }
    }

    /// Epoch numbers in time columns (`*_time`, `*_at`: submission_time, start_time, end_time,
    /// received_at, appended_at) as "2025-11-29T08:00:00Z".
    static func readableTimes(_ result: QueryResult) -> QueryResult {
        let times = Set(result.columns.indices.filter { result.columns[$0].hasSuffix("_time") || result.columns[$0].hasSuffix("_at") })
        guard !times.isEmpty else { return result }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        var readable = result
        readable.rows = result.rows.map { row in
            row.enumerated().map { i, value in
                guard times.contains(i) else { return value }
                switch value {
                case .integer(let n): return .text(formatter.string(from: Date(timeIntervalSince1970: Double(n))))
                case .real(let d) where d.isFinite: return .text(formatter.string(from: Date(timeIntervalSince1970: d.rounded(.down))))
                default: return value
                }
            }
        }
        return readable
    }
}

extension QueryResult.Value {
    /// As text in a table or CSV cell; NULL is empty.
    var text: String {
        switch self {
        case .null: return ""
        case .integer(let n): return String(n)
        case .real(let d): return String(d)
        case .text(let s): return s
        }
    }

    var isNumber: Bool {
        switch self {
        case .integer, .real: return true
        case .null, .text: return false
        }
    }
}

/// A query value as JSON: numbers stay numbers, NULL is null.
struct JSONCell: Encodable {
    let value: QueryResult.Value

    init(_ value: QueryResult.Value) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case .null: try c.encodeNil()
        case .integer(let n): try c.encode(n)
        case .real(let d): try c.encode(d)
        case .text(let s): try c.encode(s)
        }
    }
}

enum OutputFormat {
    /// RFC 4180 quoting: a cell with a comma, quote or line break is quoted, quotes doubled.
    static func csv(header: [String], rows: [[String]]) -> String {
        func cell(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        // LF line ends, as every Unix tool reading it expects (RFC 4180 allows either in practice).
        return ([header] + rows).map { $0.map(cell).joined(separator: ",") + "\n" }.joined()
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        // An empty result is `[]`, not the pretty printer's "[\n\n]".
        if let array = value as? [Any], array.isEmpty { return "[]" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
