// tools/fuzz.sh compiles this file into one module with BDCore's sources.
#if canImport(BDCore)
import BDCore
#endif

/// The accounting daemon's request and reply bodies (snake_case, as in the original API). They
/// live beside the record so the working node's sender and the daemon share one definition.

/// `PUT /set_accounting`: the record as one SGE accounting line, as in the original bdocker.
public struct SetAccountingRequest: Codable, Sendable {
    public var adminToken: String
    public var accounting: String

    public init(adminToken: String, accounting: String) {
        self.adminToken = adminToken
        self.accounting = accounting
    }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
        case accounting
    }
}

/// `PUT /accounting`: the same record as a JSON object keyed by the SGE field names.
public struct AccountingRecordRequest: Codable, Sendable {
    public var adminToken: String
    public var record: SGEAccountingRecord

    public init(adminToken: String, record: SGEAccountingRecord) {
        self.adminToken = adminToken
        self.record = record
    }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
        case record
    }
}

/// The reply to both: the record is in the store and its line in the accounting file.
public struct AccountingReceipt: Codable, Sendable, Equatable {
    /// False when the identical record had been stored before (a retry): nothing was added.
    public var new: Bool
    /// Which job run, for logs: "job 42.3 on node1 started at 1700000010".
    public var record: String

    public init(new: Bool, record: String) {
        self.new = new
        self.record = record
    }
}

/// `PUT /set_accounting_batch`: many SGE lines in one request — one transaction, one append
/// and one sync for all of them on the daemon (`AccountingLedger`). Each line gets its own
/// result, in order: one bad line does not refuse the others.
public struct AccountingBatchRequest: Codable, Sendable {
    /// Most lines one request may carry (and the request body limit of 1 MiB holds them).
    public static let maxLines = 1_000

    public var adminToken: String
    public var lines: [String]

    public init(adminToken: String, lines: [String]) {
        self.adminToken = adminToken
        self.lines = lines
    }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
        case lines
    }
}

/// The reply to a batch: one item per line, in the request's order.
public struct AccountingBatchReceipt: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        /// 200 when the line is stored and in the file, else the status a single request would get.
        public var statusCode: Int
        public var new: Bool?
        public var record: String?
        public var error: String?

        public init(statusCode: Int, new: Bool? = nil, record: String? = nil, error: String? = nil) {
            self.statusCode = statusCode
            self.new = new
            self.record = record
            self.error = error
        }

        public init(_ result: Result<AccountingReceipt, BDockerError>) {
            switch result {
            case .success(let receipt): self.init(statusCode: 200, new: receipt.new, record: receipt.record)
            case .failure(let error): self.init(statusCode: error.httpStatus, error: error.message)
            }
        }

        /// The item as the result a single request would have had.
        public var result: Result<AccountingReceipt, BDockerError> {
            if statusCode == 200 { return .success(AccountingReceipt(new: new ?? false, record: record ?? "")) }
            return .failure(BDockerError.fromHTTP(status: statusCode, message: error ?? "refused"))
        }

        enum CodingKeys: String, CodingKey {
            case statusCode = "status_code"
            case new, record, error
        }
    }

    public var items: [Item]

    public init(items: [Item]) { self.items = items }
}

// The ingest's replies write their own JSON (see `DirectJSON`); keys in sorted order.

extension AccountingReceipt: DirectJSON {
    public func writeJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        out.appendJSONKey("new")
        out.appendJSONBool(new)
        out.append(UInt8(ascii: ","))
        out.appendJSONKey("record")
        out.appendJSONString(record)
        out.append(UInt8(ascii: "}"))
    }
}

extension AccountingBatchReceipt.Item: DirectJSON {
    public func writeJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if let error {
            out.appendJSONKey("error")
            out.appendJSONString(error)
            out.append(UInt8(ascii: ","))
        }
        if let new {
            out.appendJSONKey("new")
            out.appendJSONBool(new)
            out.append(UInt8(ascii: ","))
        }
        if let record {
            out.appendJSONKey("record")
            out.appendJSONString(record)
            out.append(UInt8(ascii: ","))
        }
        out.appendJSONKey("status_code")
        out.appendJSONInt(statusCode)
        out.append(UInt8(ascii: "}"))
    }
}

extension AccountingBatchReceipt: DirectJSON {
    public func writeJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        out.appendJSONKey("items")
        out.append(UInt8(ascii: "["))
        for (i, item) in items.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            item.writeJSON(to: &out)
        }
        out.append(contentsOf: [UInt8(ascii: "]"), UInt8(ascii: "}")])
    }
}
