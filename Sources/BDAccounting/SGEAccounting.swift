// tools/fuzz.sh compiles this file into one module with BDCore's sources.
#if canImport(BDCore)
import BDCore
#endif
import Foundation

/// One job as a line of Grid Engine's accounting file (`man 5 sge_accounting`): 45 fields
/// separated by `:`, read by `qacct -f FILE`.
///
/// Field types follow what Grid Engine 8.1.9 writes, so our lines look like its own: most
/// counters and times are whole numbers; `ru_utime`, `ru_stime`, `ru_maxrss`, `ru_inblock`,
/// `cpu`, `mem`, `io`, `iow` and `maxvmem` are decimals written with six places. (`qacct` reads
/// `ru_wallclock` as a whole number, so a fraction there would be silently dropped.)
///
/// A record that passed `validate()` renders to exactly one line that `qacct` splits back into
/// the same 45 fields: `qacct` splits with `strtok`, which merges empty fields and knows no
/// escaping, so text fields must be non-empty and free of `:`, and a line starting with `#`
/// would be skipped as a comment.
public struct SGEAccountingRecord: Codable, Sendable, Equatable {
    public var qname: String
    public var hostname: String
    public var group: String
    public var owner: String
    public var jobName: String
    public var jobNumber: Int
    public var account: String
    public var priority: Int
    public var submissionTime: Int
    public var startTime: Int
    public var endTime: Int
    public var failed: Int
    public var exitStatus: Int
    public var ruWallclock: Int
    public var ruUtime: Double
    public var ruStime: Double
    public var ruMaxrss: Double
    public var ruIxrss: Int
    public var ruIsmrss: Int
    public var ruIdrss: Int
    public var ruIsrss: Int
    public var ruMinflt: Int
    public var ruMajflt: Int
    public var ruNswap: Int
    public var ruInblock: Double
    public var ruOublock: Int
    public var ruMsgsnd: Int
    public var ruMsgrcv: Int
    public var ruNsignals: Int
    public var ruNvcsw: Int
    public var ruNivcsw: Int
    public var project: String
    public var department: String
    public var grantedPE: String
    public var slots: Int
    /// Array task index; 0 for a plain job.
    public var taskNumber: Int
    /// CPU seconds.
    public var cpu: Double
    /// Integral memory usage, GB·s.
    public var mem: Double
    /// Data transferred, GB.
    public var io: Double
    public var category: String
    /// I/O wait, seconds.
    public var iow: Double
    public var peTaskID: String
    /// Peak virtual memory, bytes.
    public var maxvmem: Double
    public var arid: Int
    public var arSubmissionTime: Int

    /// A record with Grid Engine's defaults for everything a bdocker job does not set
    /// (project `NONE`, department `defaultdepartment`, no PE, one slot, zero usage).
    public init(qname: String, hostname: String, group: String, owner: String, jobName: String,
                jobNumber: Int, account: String = "sge", taskNumber: Int = 0,
                submissionTime: Int, startTime: Int, endTime: Int, failed: Int = 0, exitStatus: Int = 0) {
        self.qname = qname
        self.hostname = hostname
        self.group = group
        self.owner = owner
        self.jobName = jobName
        self.jobNumber = jobNumber
        self.account = account
        self.priority = 0
        self.submissionTime = submissionTime
        self.startTime = startTime
        self.endTime = endTime
        self.failed = failed
        self.exitStatus = exitStatus
        self.ruWallclock = max(0, endTime - startTime)
        self.ruUtime = 0
        self.ruStime = 0
        self.ruMaxrss = 0
        self.ruIxrss = 0
        self.ruIsmrss = 0
        self.ruIdrss = 0
        self.ruIsrss = 0
        self.ruMinflt = 0
        self.ruMajflt = 0
        self.ruNswap = 0
        self.ruInblock = 0
        self.ruOublock = 0
        self.ruMsgsnd = 0
        self.ruMsgrcv = 0
        self.ruNsignals = 0
        self.ruNvcsw = 0
        self.ruNivcsw = 0
        self.project = "NONE"
        self.department = "defaultdepartment"
        self.grantedPE = "NONE"
        self.slots = 1
        self.taskNumber = taskNumber
        self.cpu = 0
        self.mem = 0
        self.io = 0
        self.category = "NONE"
        self.iow = 0
        self.peTaskID = "NONE"
        self.maxvmem = 0
        self.arid = 0
        self.arSubmissionTime = 0
    }

    /// What makes a record the same job run: a batch system reuses job numbers, a restarted job
    /// gets a new start time.
    public var key: AccountingKey {
        AccountingKey(hostname: hostname, jobNumber: jobNumber, taskNumber: taskNumber, startTime: startTime)
    }

    // MARK: - The line

    /// The lines Grid Engine 8.1.9 writes at the top of a new accounting file.
    public static let fileHeader = "# Version: 8.1.9\n# \n# DO NOT MODIFY THIS FILE MANUALLY!\n# \n"

    /// The record as one accounting line, without the trailing newline.
    public func line() -> String {
        Self.fields.map { field in
            switch field.kind {
            case .text(let path): return self[keyPath: path]
            case .integer(let path): return String(self[keyPath: path])
            case .decimal(let path): return Self.sixDecimals(self[keyPath: path])
            }
        }.joined(separator: ":")
    }

    /// Reads one accounting line; every problem is an `invalidInput` naming the field.
    public static func parse(_ line: String) throws(BDockerError) -> SGEAccountingRecord {
        guard !line.isEmpty else { throw .invalidInput("the accounting line is empty") }
        if let problem = forbiddenCharacter(in: line) {
            throw .invalidInput("the accounting line contains \(problem); send exactly one record, as one line")
        }
        // Split the bytes, as qacct's strtok does: a ':' followed by a combining mark is one
        // Swift Character, which a Character split would not cut. ':' is ASCII, so every piece
        // is whole UTF-8.
        let values = line.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard values.count == fields.count else {
            throw .invalidInput("the accounting line has \(values.count) colon-separated field\(values.count == 1 ? "" : "s"); "
                + "an SGE accounting line has \(fields.count)")
        }
        var record = SGEAccountingRecord.blank
        for (field, value) in zip(fields, values) {
            let text = String(decoding: value, as: UTF8.self)
            switch field.kind {
            case .text(let path):
                record[keyPath: path] = text
            case .integer(let path):
                guard text.utf8.allSatisfy({ (48...57).contains($0) }), let number = Int(text) else {
                    throw .invalidInput("\(field.label) is '\(text.prefix(40))', not a whole number")
                }
                record[keyPath: path] = number
            case .decimal(let path):
                guard isPlainDecimal(text), let number = Double(text) else {
                    throw .invalidInput("\(field.label) is '\(text.prefix(40))', not a decimal number")
                }
                record[keyPath: path] = number
            }
        }
        try record.validate()
        return record
    }

    /// Checks what `line()` needs to produce a line `qacct` reads back field for field.
    public func validate() throws(BDockerError) {
        for field in Self.fields {
            switch field.kind {
            case .text(let path):
                let text = self[keyPath: path]
                guard !text.isEmpty else {
                    throw .invalidInput("\(field.label) is empty (qacct would merge it with the next field; Grid Engine writes NONE)")
                }
                if let problem = Self.forbiddenCharacter(in: text) {
                    throw .invalidInput("\(field.label) contains \(problem)")
                }
                // Bytes, not Characters: ":\u{301}" is one Character that is not ":".
                guard !text.utf8.contains(UInt8(ascii: ":")) else {
                    throw .invalidInput("\(field.label) '\(text.prefix(40))' contains ':', the field separator")
                }
            case .integer(let path):
                guard self[keyPath: path] >= 0 else { throw .invalidInput("\(field.label) is negative") }
            case .decimal(let path):
                let value = self[keyPath: path]
                guard value.isFinite else { throw .invalidInput("\(field.label) is not a finite number") }
                guard value >= 0 else { throw .invalidInput("\(field.label) is negative") }
            }
        }
        guard qname.utf8.first != UInt8(ascii: "#") else {
            throw .invalidInput("field 1 (qname) starts with '#', which would make the line a comment qacct skips")
        }
    }

    /// Newline, carriage return, NUL and other control characters (tab is fine): each would
    /// split or truncate the line for some reader.
    static func forbiddenCharacter(in text: String) -> String? {
        for scalar in text.unicodeScalars where (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F {
            switch scalar {
            case "\n": return "a newline"
            case "\r": return "a carriage return"
            case "\0": return "a NUL character"
            default: return "the control character U+\(String(format: "%04X", scalar.value))"
            }
        }
        return nil
    }

    /// Digits with an optional fraction and exponent: what `%f` and `%e` print. Swift's
    /// `Double(String)` would also take `nan`, `inf` and hexadecimal.
    static func isPlainDecimal(_ text: String) -> Bool {
        // Bytes, not Characters: every accepted byte is ASCII, and this runs 9 times a record.
        var rest = text.utf8[...]
        func digits() -> Int {
            let run = rest.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }.count
            rest = rest.dropFirst(run)
            return run
        }
        guard digits() > 0 else { return false }
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            _ = digits()
        }
        if let e = rest.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            rest = rest.dropFirst()
            if let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { rest = rest.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return rest.isEmpty
    }

    /// `%.6f`, as Grid Engine writes decimals, through the C library's own formatter into a
    /// stack buffer: the same digits as `String(format:)`, without its per-call Foundation
    /// machinery (nine decimals in every line made that most of `line()`'s time).
    static func sixDecimals(_ value: Double) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 384) { buffer in
            let written = withVaList([value]) { vsnprintf(buffer.baseAddress!, buffer.count, "%.6f", $0) }
            guard written > 0, Int(written) < buffer.count else { return String(format: "%.6f", value) }
            return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: Int(written)), as: UTF8.self)
        }
    }

    // MARK: - The 45 fields

    enum Kind: Sendable {
        case text(WritableKeyPath<SGEAccountingRecord, String> & Sendable)
        case integer(WritableKeyPath<SGEAccountingRecord, Int> & Sendable)
        case decimal(WritableKeyPath<SGEAccountingRecord, Double> & Sendable)
    }

    struct Field: Sendable {
        /// The name `man 5 sge_accounting` uses, also the JSON key.
        let name: String
        /// 1-based, as in the man page.
        let position: Int
        let kind: Kind
        var label: String { "field \(position) (\(name))" }
    }

    /// The fields in the order of the line. Parsing, rendering, validation and the JSON form all
    /// walk this one table.
    static let fields: [Field] = {
        let kinds: [(String, Kind)] = [
            ("qname", .text(\.qname)), ("hostname", .text(\.hostname)), ("group", .text(\.group)),
            ("owner", .text(\.owner)), ("job_name", .text(\.jobName)), ("job_number", .integer(\.jobNumber)),
            ("account", .text(\.account)), ("priority", .integer(\.priority)),
            ("submission_time", .integer(\.submissionTime)), ("start_time", .integer(\.startTime)),
            ("end_time", .integer(\.endTime)), ("failed", .integer(\.failed)), ("exit_status", .integer(\.exitStatus)),
            ("ru_wallclock", .integer(\.ruWallclock)), ("ru_utime", .decimal(\.ruUtime)), ("ru_stime", .decimal(\.ruStime)),
            ("ru_maxrss", .decimal(\.ruMaxrss)), ("ru_ixrss", .integer(\.ruIxrss)), ("ru_ismrss", .integer(\.ruIsmrss)),
            ("ru_idrss", .integer(\.ruIdrss)), ("ru_isrss", .integer(\.ruIsrss)), ("ru_minflt", .integer(\.ruMinflt)),
            ("ru_majflt", .integer(\.ruMajflt)), ("ru_nswap", .integer(\.ruNswap)), ("ru_inblock", .decimal(\.ruInblock)),
            ("ru_oublock", .integer(\.ruOublock)), ("ru_msgsnd", .integer(\.ruMsgsnd)), ("ru_msgrcv", .integer(\.ruMsgrcv)),
            ("ru_nsignals", .integer(\.ruNsignals)), ("ru_nvcsw", .integer(\.ruNvcsw)), ("ru_nivcsw", .integer(\.ruNivcsw)),
            ("project", .text(\.project)), ("department", .text(\.department)), ("granted_pe", .text(\.grantedPE)),
            ("slots", .integer(\.slots)), ("task_number", .integer(\.taskNumber)), ("cpu", .decimal(\.cpu)),
            ("mem", .decimal(\.mem)), ("io", .decimal(\.io)), ("category", .text(\.category)), ("iow", .decimal(\.iow)),
            ("pe_taskid", .text(\.peTaskID)), ("maxvmem", .decimal(\.maxvmem)), ("arid", .integer(\.arid)),
            ("ar_submission_time", .integer(\.arSubmissionTime)),
        ]
        return kinds.enumerated().map { Field(name: $1.0, position: $0 + 1, kind: $1.1) }
    }()

    /// The starting point `parse` and `init(from:)` fill in; every field is overwritten.
    static let blank = SGEAccountingRecord(qname: "", hostname: "", group: "", owner: "", jobName: "", jobNumber: 0,
                                           submissionTime: 0, startTime: 0, endTime: 0)

    // MARK: - JSON form

    struct FieldKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    /// The structured form: an object with the 45 SGE field names as keys, all required, no
    /// others. Throws `BDockerError.invalidInput` for a value `validate()` refuses.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: FieldKey.self)
        let known = Set(Self.fields.map(\.name))
        if let unknown = container.allKeys.map(\.stringValue).filter({ !known.contains($0) }).sorted().first {
            throw BDockerError.invalidInput("'\(unknown)' is not an SGE accounting field; the fields are "
                + Self.fields.map(\.name).joined(separator: ", "))
        }
        var record = SGEAccountingRecord.blank
        for field in Self.fields {
            let key = FieldKey(stringValue: field.name)
            switch field.kind {
            case .text(let path): record[keyPath: path] = try container.decode(String.self, forKey: key)
            case .integer(let path): record[keyPath: path] = try container.decode(Int.self, forKey: key)
            case .decimal(let path): record[keyPath: path] = try container.decode(Double.self, forKey: key)
            }
        }
        try record.validate()
        self = record
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: FieldKey.self)
        for field in Self.fields {
            let key = FieldKey(stringValue: field.name)
            switch field.kind {
            case .text(let path): try container.encode(self[keyPath: path], forKey: key)
            case .integer(let path): try container.encode(self[keyPath: path], forKey: key)
            case .decimal(let path): try container.encode(self[keyPath: path], forKey: key)
            }
        }
    }
}

/// The identity of one job run in the accounting store.
public struct AccountingKey: Sendable, Hashable, CustomStringConvertible {
    public var hostname: String
    public var jobNumber: Int
    public var taskNumber: Int
    public var startTime: Int

    public var description: String {
        "job \(jobNumber)\(taskNumber == 0 ? "" : ".\(taskNumber)") on \(hostname) started at \(startTime)"
    }
}
