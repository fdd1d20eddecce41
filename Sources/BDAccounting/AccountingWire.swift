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
