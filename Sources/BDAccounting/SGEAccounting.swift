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
    /// The 45 values, each kind in one array in the order of the line; `fields` maps each
    /// field to its slot. Parsing, rendering and validation index these arrays: key paths and
    /// 45 separately stored fields made every record cost generic lookups and retains.
    var texts: [String]
    var integers: [Int]
    var decimals: [Double]

    public var qname: String { get { texts[0] } set { texts[0] = newValue } }
    public var hostname: String { get { texts[1] } set { texts[1] = newValue } }
    public var group: String { get { texts[2] } set { texts[2] = newValue } }
    public var owner: String { get { texts[3] } set { texts[3] = newValue } }
    public var jobName: String { get { texts[4] } set { texts[4] = newValue } }
    public var jobNumber: Int { get { integers[0] } set { integers[0] = newValue } }
    public var account: String { get { texts[5] } set { texts[5] = newValue } }
    public var priority: Int { get { integers[1] } set { integers[1] = newValue } }
    public var submissionTime: Int { get { integers[2] } set { integers[2] = newValue } }
    public var startTime: Int { get { integers[3] } set { integers[3] = newValue } }
    public var endTime: Int { get { integers[4] } set { integers[4] = newValue } }
    public var failed: Int { get { integers[5] } set { integers[5] = newValue } }
    public var exitStatus: Int { get { integers[6] } set { integers[6] = newValue } }
    public var ruWallclock: Int { get { integers[7] } set { integers[7] = newValue } }
    public var ruUtime: Double { get { decimals[0] } set { decimals[0] = newValue } }
    public var ruStime: Double { get { decimals[1] } set { decimals[1] = newValue } }
    public var ruMaxrss: Double { get { decimals[2] } set { decimals[2] = newValue } }
    public var ruIxrss: Int { get { integers[8] } set { integers[8] = newValue } }
    public var ruIsmrss: Int { get { integers[9] } set { integers[9] = newValue } }
    public var ruIdrss: Int { get { integers[10] } set { integers[10] = newValue } }
    public var ruIsrss: Int { get { integers[11] } set { integers[11] = newValue } }
    public var ruMinflt: Int { get { integers[12] } set { integers[12] = newValue } }
    public var ruMajflt: Int { get { integers[13] } set { integers[13] = newValue } }
    public var ruNswap: Int { get { integers[14] } set { integers[14] = newValue } }
    public var ruInblock: Double { get { decimals[3] } set { decimals[3] = newValue } }
    public var ruOublock: Int { get { integers[15] } set { integers[15] = newValue } }
    public var ruMsgsnd: Int { get { integers[16] } set { integers[16] = newValue } }
    public var ruMsgrcv: Int { get { integers[17] } set { integers[17] = newValue } }
    public var ruNsignals: Int { get { integers[18] } set { integers[18] = newValue } }
    public var ruNvcsw: Int { get { integers[19] } set { integers[19] = newValue } }
    public var ruNivcsw: Int { get { integers[20] } set { integers[20] = newValue } }
    public var project: String { get { texts[6] } set { texts[6] = newValue } }
    public var department: String { get { texts[7] } set { texts[7] = newValue } }
    public var grantedPE: String { get { texts[8] } set { texts[8] = newValue } }
    public var slots: Int { get { integers[21] } set { integers[21] = newValue } }
    /// Array task index; 0 for a plain job.
    public var taskNumber: Int { get { integers[22] } set { integers[22] = newValue } }
    /// CPU seconds.
    public var cpu: Double { get { decimals[4] } set { decimals[4] = newValue } }
    /// Integral memory usage, GB·s.
    public var mem: Double { get { decimals[5] } set { decimals[5] = newValue } }
    /// Data transferred, GB.
    public var io: Double { get { decimals[6] } set { decimals[6] = newValue } }
    public var category: String { get { texts[9] } set { texts[9] = newValue } }
    /// I/O wait, seconds.
    public var iow: Double { get { decimals[7] } set { decimals[7] = newValue } }
    public var peTaskID: String { get { texts[10] } set { texts[10] = newValue } }
    /// Peak virtual memory, bytes.
    public var maxvmem: Double { get { decimals[8] } set { decimals[8] = newValue } }
    public var arid: Int { get { integers[23] } set { integers[23] = newValue } }
    public var arSubmissionTime: Int { get { integers[24] } set { integers[24] = newValue } }

    /// A record with Grid Engine's defaults for everything a bdocker job does not set
    /// (project `NONE`, department `defaultdepartment`, no PE, one slot, zero usage).
    public init(qname: String, hostname: String, group: String, owner: String, jobName: String,
                jobNumber: Int, account: String = "sge", taskNumber: Int = 0,
                submissionTime: Int, startTime: Int, endTime: Int, failed: Int = 0, exitStatus: Int = 0) {
        texts = Array(repeating: "NONE", count: 11)
        integers = Array(repeating: 0, count: 25)
        decimals = Array(repeating: 0, count: 9)
        self.qname = qname
        self.hostname = hostname
        self.group = group
        self.owner = owner
        self.jobName = jobName
        self.jobNumber = jobNumber
        self.account = account
        self.submissionTime = submissionTime
        self.startTime = startTime
        self.endTime = endTime
        self.failed = failed
        self.exitStatus = exitStatus
        self.ruWallclock = max(0, endTime - startTime)
        self.department = "defaultdepartment"
        self.slots = 1
        self.taskNumber = taskNumber
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
        var line = ""
        line.reserveCapacity(320)
        for field in Self.fields {
            if field.position > 1 { line.append(":") }
            switch field.kind {
            case .text(let slot): line.append(texts[slot])
            case .integer(let slot): line.append(String(integers[slot]))
            case .decimal(let slot): line.append(Self.sixDecimals(decimals[slot]))
            }
        }
        return line
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
            switch field.kind {
            case .text(let slot):
                record.texts[slot] = String(decoding: value, as: UTF8.self)
            case .integer(let slot):
                // From the bytes: no String for the 25 integers of every line.
                guard let number = wholeNumber(value) else {
                    throw .invalidInput("\(field.label) is '\(String(decoding: value, as: UTF8.self).prefix(40))', not a whole number")
                }
                record.integers[slot] = number
            case .decimal(let slot):
                let text = String(decoding: value, as: UTF8.self)
                guard isPlainDecimal(text), let number = Double(text) else {
                    throw .invalidInput("\(field.label) is '\(text.prefix(40))', not a decimal number")
                }
                record.decimals[slot] = number
            }
        }
        try record.validate()
        return record
    }

    /// Checks what `line()` needs to produce a line `qacct` reads back field for field.
    public func validate() throws(BDockerError) {
        for field in Self.fields {
            switch field.kind {
            case .text(let slot):
                let text = texts[slot]
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
            case .integer(let slot):
                guard integers[slot] >= 0 else { throw .invalidInput("\(field.label) is negative") }
            case .decimal(let slot):
                let value = decimals[slot]
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
        // Every such character is one ASCII byte, and no byte of a multi-byte UTF-8 sequence is
        // below 0x80: scanning bytes finds them all, fast, in the common case of none.
        guard text.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { return nil }
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

    /// Decimal digits only (no sign, no space), fitting an Int; nil otherwise.
    static func wholeNumber(_ digits: Substring.UTF8View) -> Int? {
        guard !digits.isEmpty else { return nil }
        var number = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = number.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            number = sum
        }
        return number
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
        if let exact = sixDecimalsByIntegers(value) { return exact }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 384) { buffer in
            let written = withVaList([value]) { vsnprintf(buffer.baseAddress!, buffer.count, "%.6f", $0) }
            guard written > 0, Int(written) < buffer.count else { return String(format: "%.6f", value) }
            return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: Int(written)), as: UTF8.self)
        }
    }

    /// `%.6f` of a value below 2^52 / 10^6 in integer arithmetic, rounded as printf rounds: to
    /// the nearest millionth of the value's exact binary expansion, ties to even. The product
    /// `value × 10^6` is rounded once; `fma` recovers its exact error, which decides the
    /// rounding whenever the rounded product sits exactly halfway. Nil outside that range.
    static func sixDecimalsByIntegers(_ value: Double) -> String? {
        guard value >= 0, value < 4_503_599_627.0 else { return nil }
        let product = value * 1_000_000
        // The exact value × 10^6 is product + error; |error| <= ulp(product) / 2.
        let error = (-product).addingProduct(value, 1_000_000)
        let floor = product.rounded(.down)
        // Exact, and a multiple of ulp(product) (below 2^52 that ulp divides 0.5): unless it is
        // 0, its sign is the sign of the exact value's distance above the half.
        let aboveHalf = (product - floor) - 0.5
        var millionths = UInt64(floor)
        if aboveHalf > 0 || (aboveHalf == 0 && (error > 0 || (error == 0 && millionths & 1 == 1))) {
            millionths += 1
        }
        let whole = millionths / 1_000_000, fraction = millionths % 1_000_000
        let digits = String(fraction)
        return String(whole) + "." + String(repeating: "0", count: 6 - digits.count) + digits
    }


    // MARK: - The 45 fields

    enum Kind: Sendable {
        /// Slots in `texts`, `integers`, `decimals`.
        case text(Int)
        case integer(Int)
        case decimal(Int)
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
            ("qname", .text(0)), ("hostname", .text(1)), ("group", .text(2)),
            ("owner", .text(3)), ("job_name", .text(4)), ("job_number", .integer(0)),
            ("account", .text(5)), ("priority", .integer(1)),
            ("submission_time", .integer(2)), ("start_time", .integer(3)),
            ("end_time", .integer(4)), ("failed", .integer(5)), ("exit_status", .integer(6)),
            ("ru_wallclock", .integer(7)), ("ru_utime", .decimal(0)), ("ru_stime", .decimal(1)),
            ("ru_maxrss", .decimal(2)), ("ru_ixrss", .integer(8)), ("ru_ismrss", .integer(9)),
            ("ru_idrss", .integer(10)), ("ru_isrss", .integer(11)), ("ru_minflt", .integer(12)),
            ("ru_majflt", .integer(13)), ("ru_nswap", .integer(14)), ("ru_inblock", .decimal(3)),
            ("ru_oublock", .integer(15)), ("ru_msgsnd", .integer(16)), ("ru_msgrcv", .integer(17)),
            ("ru_nsignals", .integer(18)), ("ru_nvcsw", .integer(19)), ("ru_nivcsw", .integer(20)),
            ("project", .text(6)), ("department", .text(7)), ("granted_pe", .text(8)),
            ("slots", .integer(21)), ("task_number", .integer(22)), ("cpu", .decimal(4)),
            ("mem", .decimal(5)), ("io", .decimal(6)), ("category", .text(9)), ("iow", .decimal(7)),
            ("pe_taskid", .text(10)), ("maxvmem", .decimal(8)), ("arid", .integer(23)),
            ("ar_submission_time", .integer(24)),
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
            case .text(let slot): record.texts[slot] = try container.decode(String.self, forKey: key)
            case .integer(let slot): record.integers[slot] = try container.decode(Int.self, forKey: key)
            case .decimal(let slot): record.decimals[slot] = try container.decode(Double.self, forKey: key)
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
            case .text(let slot): try container.encode(texts[slot], forKey: key)
            case .integer(let slot): try container.encode(integers[slot], forKey: key)
            case .decimal(let slot): try container.encode(decimals[slot], forKey: key)
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
