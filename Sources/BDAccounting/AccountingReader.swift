import BDCore
import Foundation
import GRDB

/// A result set of `sql`: column names and rows of plain values.
public struct QueryResult: Sendable {
    public enum Value: Sendable, Equatable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
    }

    public var columns: [String]
    public var rows: [[Value]]
}

/// The accounting store opened read-only, for `bdocker-acct`: a reader can never change it, and
/// never blocks the daemon (WAL readers do not block the writer).
public struct AccountingReader: Sendable {
    public let path: String
    let queue: DatabaseQueue

    public init(path: String) throws(BDockerError) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .notFound("no accounting database at \(path) (see [server] database in the accounting daemon's configuration)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        // The operator running bdocker-acct is the user here: the message names the cause.
        queue = try BDockerError.mapping({ .internalFault("cannot open \(path) read-only: \(Self.describe($0))", cause: $0) }) {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            let isAccounting = try queue.read { db in try db.tableExists("records") && db.tableExists("accounting_file") }
            guard isAccounting else {
                throw BDockerError.invalidInput("\(path) is not a bdocker accounting database (it has no records table)")
            }
            return queue
        }
        self.path = path
    }

    /// Writes the header and the matching lines, in the order they were received (the order of
    /// the accounting file). Returns how many lines.
    public func exportSGE(_ filter: AccountingFilter, to output: FileHandle) throws(BDockerError) -> Int {
        let (sql, arguments) = Self.linesSQL(filter)
        var buffer = Data(SGEAccountingRecord.fileHeader.utf8)
        buffer.reserveCapacity(1 << 20)
        var count = 0
        do {
            try queue.read { db in
                let lines = try String.fetchCursor(db, sql: sql, arguments: arguments)
                while let line = try lines.next() {
                    buffer.append(contentsOf: line.utf8)
                    buffer.append(UInt8(ascii: "\n"))
                    count += 1
                    if buffer.count >= 1 << 20 {
                        try output.write(contentsOf: buffer)
                        buffer.removeAll(keepingCapacity: true)
                    }
                }
            }
            try output.write(contentsOf: buffer)
        } catch {
            throw .internalFault("export from \(path) failed: \(Self.describe(error))")
        }
        return count
    }

    /// Runs one read-only statement. Anything that would write is refused before it runs (and
    /// the connection is read-only besides).
    public func query(_ sql: String) throws(BDockerError) -> QueryResult {
        try BDockerError.mapping({ error in
            if let error = error as? DatabaseError {
                return .invalidInput("query failed: \(error.message ?? "\(error.resultCode)")")
            }
            return .internalFault("query on \(path) failed: \(error)", cause: error)
        }) {
            try queue.read { db in
                let statement: Statement
                do {
                    let statements = try db.allStatements(sql: sql)
                    guard let first = try statements.next() else { throw BDockerError.invalidInput("the query is empty") }
                    guard try statements.next() == nil else {
                        throw BDockerError.invalidInput("give one statement; this has more than one (separated by ';')")
                    }
                    statement = first
                } catch let error as DatabaseError {
                    throw BDockerError.invalidInput("bad SQL: \(error.message ?? "\(error.resultCode)")")
                }
                guard statement.isReadonly else {
                    throw BDockerError.forbidden("only queries are allowed: the accounting database is opened read-only "
                        + "(\(sql.trimmingCharacters(in: .whitespacesAndNewlines).prefix(40))… would change it)")
                }
                var rows: [[QueryResult.Value]] = []
                let cursor = try Row.fetchCursor(statement)
                while let row = try cursor.next() {
                    rows.append(row.databaseValues.map(Self.value))
                }
                return QueryResult(columns: statement.columnNames, rows: rows)
            }
        }
    }

    private static func value(_ value: DatabaseValue) -> QueryResult.Value {
        switch value.storage {
        case .null: return .null
        case .int64(let n): return .integer(n)
        case .double(let d): return .real(d)
        case .string(let s): return .text(s)
        case .blob(let data): return .text("x'" + data.map { String(format: "%02x", $0) }.joined() + "'")
        }
    }

    static func describe(_ error: any Error) -> String {
        (error as? DatabaseError)?.message ?? "\(error)"
    }
}
