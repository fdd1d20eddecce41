/// Rewrites a tar stream as it passes between a job user and the engine, so that whatever the
/// archive says, what arrives is plain: every entry owned by the job's user, no setuid, setgid
/// or sticky bit, no device node or fifo, no absolute or `..` name, no entry below a symlink
/// of the same archive, no hard link to anything outside it, and no pax or xattr extras
/// (file capabilities travel as xattrs). Input may be GNU, ustar or pax; output is GNU tar.
/// It works on bytes as they come (any chunking) and never holds more than one header.
public struct TarRewriter: Sendable {
    public struct Policy: Sendable, Equatable {
        public var uid: Int
        public var gid: Int
        /// Renames the archive's top entry (and what is below it) on the way, as `cp` to a new name.
        public var rename: (from: String, to: String)?
        /// The most payload bytes allowed through; nil = no limit.
        public var maxBytes: Int64?

        public init(uid: Int, gid: Int, rename: (from: String, to: String)? = nil, maxBytes: Int64? = nil) {
            self.uid = uid
            self.gid = gid
            self.rename = rename
            self.maxBytes = maxBytes
        }

        public static func == (a: Policy, b: Policy) -> Bool {
            a.uid == b.uid && a.gid == b.gid && a.rename?.from == b.rename?.from && a.rename?.to == b.rename?.to && a.maxBytes == b.maxBytes
        }
    }

    static let block = 512

    let policy: Policy
    private var pending: [UInt8] = []
    /// Bytes of entry data still to pass through (data and padding), or to collect (long names, pax).
    private var dataLeft = 0
    private var padLeft = 0
    private var collecting: Collect?
    private var collected: [UInt8] = []
    private var longName: String?
    private var longLink: String?
    private var pax: [String: String] = [:]
    private var names: Set<String> = []
    private var symlinks: Set<String> = []
    private var payload: Int64 = 0
    private var ended = false
    public private(set) var entries = 0

    private enum Collect { case longName, longLink, pax, ignore }

    public init(policy: Policy) {
        self.policy = policy
    }

    /// The rewritten bytes for this chunk of input.
    public mutating func feed(_ input: [UInt8]) throws(BDockerError) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < input.count, !ended {
            if dataLeft > 0 || padLeft > 0 {
                let take = min(input.count - index, dataLeft > 0 ? dataLeft : padLeft)
                let slice = input[index..<(index + take)]
                if let collecting {
                    if collecting != .ignore, dataLeft > 0 {
                        guard collected.count + take <= 1 << 20 else { throw .invalidInput("archive has a header extension over 1 MiB") }
                        collected += slice
                    }
                } else {
                    out += slice
                }
                if dataLeft > 0 { dataLeft -= take } else { padLeft -= take }
                index += take
                if dataLeft == 0, padLeft == 0, collecting != nil { try finishCollect() }
                continue
            }
            let take = min(input.count - index, Self.block - pending.count)
            pending += input[index..<(index + take)]
            index += take
            if pending.count == Self.block {
                let header = pending
                pending.removeAll(keepingCapacity: true)
                out += try header_(header)
            }
        }
        return out
    }

    /// Call at the end of input: the closing blocks, or an error for a cut-off archive.
    public mutating func finish() throws(BDockerError) -> [UInt8] {
        guard ended || (entries > 0 && pending.isEmpty && dataLeft == 0 && padLeft == 0 && collecting == nil) else {
            throw .invalidInput(entries == 0 && pending.isEmpty ? "the archive is empty" : "the archive ends in the middle of an entry")
        }
        if ended { return [] }
        ended = true
        return [UInt8](repeating: 0, count: Self.block * 2)
    }

    // MARK: headers

    private mutating func header_(_ h: [UInt8]) throws(BDockerError) -> [UInt8] {
        if h.allSatisfy({ $0 == 0 }) {
            ended = true
            guard collecting == nil, longName == nil, longLink == nil, pax.isEmpty else {
                throw .invalidInput("the archive ends after a header extension")
            }
            return [UInt8](repeating: 0, count: Self.block * 2)
        }
        guard Self.checksumOK(h) else { throw .invalidInput("the archive has a damaged header (bad checksum)") }
        let type = h[156]
        let size = try Self.number(h, 124, 12, what: "size")
        switch type {
        case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
            collecting = type == UInt8(ascii: "L") ? .longName : type == UInt8(ascii: "K") ? .longLink
                : type == UInt8(ascii: "x") ? .pax : .ignore
            collected = []
            try setData(size)
            if dataLeft == 0 { try finishCollect() }
            return []
        default:
            break
        }
        var name = longName ?? pax["path"] ?? Self.ustarName(h)
        var link = longLink ?? pax["linkpath"] ?? Self.string(h, 157, 100)
        let entrySize = try pax["size"].map { s throws(BDockerError) -> Int64 in
            guard let v = Int64(s), v >= 0 else { throw .invalidInput("the archive has a bad pax size '\(s)'") }
            return v
        } ?? size
        let mtime = (try? Self.number(h, 136, 12, what: "mtime")) ?? 0
        longName = nil
        longLink = nil
        pax = [:]

        let kind: UInt8
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = UInt8(ascii: "0")
        case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "5"): kind = type
        case UInt8(ascii: "3"), UInt8(ascii: "4"): throw .forbidden("the archive holds a device node (\(Self.shown(name))); refused")
        case UInt8(ascii: "6"): throw .forbidden("the archive holds a fifo (\(Self.shown(name))); refused")
        default: throw .invalidInput("the archive holds an entry of unsupported type '\(Self.shown(String(decoding: [type], as: UTF8.self)))' (\(Self.shown(name)))")
        }
        name = try clean(name, what: "name")
        if kind == UInt8(ascii: "1") {
            link = try clean(link, what: "hard link target")
            guard names.contains(link) else {
                throw .forbidden("the archive holds a hard link to \(Self.shown(link)), which is not in the archive; refused")
            }
        }
        // An entry below a symlink of this archive would land wherever the link points.
        let parts = name.split(separator: "/")
        for depth in 1..<max(parts.count, 1) where symlinks.contains(parts.prefix(depth).joined(separator: "/")) {
            throw .forbidden("the archive puts \(Self.shown(name)) below its own symlink; refused")
        }
        if kind == UInt8(ascii: "2") { symlinks.insert(name) } else { symlinks.remove(name) }
        names.insert(name)
        entries += 1

        let dataSize = kind == UInt8(ascii: "0") ? entrySize : 0
        payload += dataSize
        if let max = policy.maxBytes, payload > max {
            throw .forbidden("the copy is larger than the limit of \(max) bytes ([server] max_copy_bytes)")
        }
        let mode = (try? Self.number(h, 100, 8, what: "mode")) ?? 0o644
        var out: [UInt8] = []
        if name.utf8.count > 100 { out += Self.longEntry(UInt8(ascii: "L"), name) }
        if kind != UInt8(ascii: "5") && kind != UInt8(ascii: "0") && link.utf8.count > 100 { out += Self.longEntry(UInt8(ascii: "K"), link) }
        out += Self.header(name: name, mode: mode & 0o777, uid: policy.uid, gid: policy.gid, size: dataSize, mtime: mtime,
                           type: kind, link: kind == UInt8(ascii: "1") || kind == UInt8(ascii: "2") ? link : "")
        // Data of a non-regular entry (there should be none) is skipped, not passed on.
        collecting = nil
        if kind == UInt8(ascii: "0") {
            try setData(entrySize)
        } else if size > 0 {
            collecting = .ignore
            try setData(size)
        }
        return out
    }

    private mutating func setData(_ size: Int64) throws(BDockerError) {
        guard size >= 0, size < Int64(Int.max / 2) else { throw .invalidInput("the archive has an entry of impossible size") }
        dataLeft = Int(size)
        padLeft = (Self.block - Int(size % Int64(Self.block))) % Self.block
    }

    private mutating func finishCollect() throws(BDockerError) {
        let bytes = collected
        switch collecting {
        case .longName?: longName = Self.cString(bytes)
        case .longLink?: longLink = Self.cString(bytes)
        case .pax?: pax.merge(try Self.paxRecords(bytes)) { _, new in new }
        default: break
        }
        collecting = nil
        collected = []
    }

    /// Strips "./" and trailing "/", refuses absolute and `..` names, applies the rename.
    private func clean(_ raw: String, what: String) throws(BDockerError) -> String {
        guard !raw.hasPrefix("/") else { throw .forbidden("the archive holds an absolute \(what) \(Self.shown(raw)); refused") }
        var parts = raw.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else { throw .forbidden("the archive holds a \(what) with '..' (\(Self.shown(raw))); refused") }
        guard !parts.isEmpty, !raw.contains("\0") else { throw .invalidInput("the archive holds an empty \(what)") }
        if let rename = policy.rename, parts[0] == rename.from { parts[0] = rename.to }
        return parts.joined(separator: "/")
    }

    // MARK: encoding

    static func header(name: String, mode: Int64, uid: Int, gid: Int, size: Int64, mtime: Int64, type: UInt8, link: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: block)
        put(&h, 0, 100, Array(name.utf8.prefix(100)))
        putNumber(&h, 100, 8, mode)
        putNumber(&h, 108, 8, Int64(uid))
        putNumber(&h, 116, 8, Int64(gid))
        putNumber(&h, 124, 12, size)
        putNumber(&h, 136, 12, max(0, mtime))
        h[156] = type
        put(&h, 157, 100, Array(link.utf8.prefix(100)))
        put(&h, 257, 8, Array("ustar  \0".utf8))
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int64($1) }
        put(&h, 148, 8, Array(String(format6(sum)).utf8) + [0, 32])
        return h
    }

    static func format6(_ v: Int64) -> String {
        let s = String(v, radix: 8)
        return String(repeating: "0", count: max(0, 6 - s.count)) + s
    }

    /// A GNU ././@LongLink entry carrying a name or link target too long for the header.
    static func longEntry(_ type: UInt8, _ text: String) -> [UInt8] {
        var data = Array(text.utf8) + [0]
        var out = header(name: "././@LongLink", mode: 0o644, uid: 0, gid: 0, size: Int64(data.count), mtime: 0, type: type, link: "")
        data += [UInt8](repeating: 0, count: (block - data.count % block) % block)
        out += data
        return out
    }

    static func put(_ h: inout [UInt8], _ offset: Int, _ width: Int, _ bytes: [UInt8]) {
        for (i, b) in bytes.prefix(width).enumerated() { h[offset + i] = b }
    }

    /// Octal when it fits, GNU base-256 otherwise.
    static func putNumber(_ h: inout [UInt8], _ offset: Int, _ width: Int, _ value: Int64) {
        let octal = String(max(0, value), radix: 8)
        if octal.count < width {
            put(&h, offset, width, Array((String(repeating: "0", count: width - 1 - octal.count) + octal).utf8) + [0])
        } else {
            var v = UInt64(max(0, value))
            for i in stride(from: offset + width - 1, to: offset, by: -1) {
                h[i] = UInt8(v & 0xff)
                v >>= 8
            }
            h[offset] = 0x80
        }
    }

    // MARK: decoding

    static func checksumOK(_ h: [UInt8]) -> Bool {
        guard let stored = try? number(h, 148, 8, what: "checksum") else { return false }
        var sum: Int64 = 0
        for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int64(b) }
        return sum == stored
    }

    /// An octal field (spaces and NULs around it) or a base-256 one.
    static func number(_ h: [UInt8], _ offset: Int, _ width: Int, what: String) throws(BDockerError) -> Int64 {
        let field = h[offset..<(offset + width)]
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80, field.dropFirst().prefix(width - 9).allSatisfy({ $0 == 0 }) else {
                throw .invalidInput("the archive has an out-of-range \(what)")
            }
            var v: UInt64 = 0
            for b in field.suffix(8) { v = v << 8 | UInt64(b) }
            guard v <= UInt64(Int64.max) else { throw .invalidInput("the archive has an out-of-range \(what)") }
            return Int64(v)
        }
        var v: Int64 = 0
        var seen = false
        for b in field {
            if b == 0 || b == 32 { if seen { break } else { continue } }
            guard (48...55).contains(b) else { throw .invalidInput("the archive has a malformed \(what) field") }
            seen = true
            let (m, o1) = v.multipliedReportingOverflow(by: 8)
            let (s, o2) = m.addingReportingOverflow(Int64(b - 48))
            guard !o1, !o2 else { throw .invalidInput("the archive has an out-of-range \(what)") }
            v = s
        }
        return v
    }

    static func string(_ h: [UInt8], _ offset: Int, _ width: Int) -> String {
        cString(Array(h[offset..<(offset + width)]))
    }

    static func cString(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// ustar splits long names into prefix (345..<500) and name.
    static func ustarName(_ h: [UInt8]) -> String {
        let name = string(h, 0, 100)
        guard Array(h[257..<262]) == Array("ustar".utf8), h[262] == 0 else { return name }
        let prefix = string(h, 345, 155)
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    /// "LEN key=value\n" records.
    static func paxRecords(_ bytes: [UInt8]) throws(BDockerError) -> [String: String] {
        var result: [String: String] = [:]
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0 { break }
            var length = 0
            var j = i
            while j < bytes.count, (48...57).contains(bytes[j]) {
                length = length * 10 + Int(bytes[j] - 48)
                guard length <= bytes.count else { throw .invalidInput("the archive has a malformed pax header") }
                j += 1
            }
            guard j < bytes.count, bytes[j] == 32, length > j - i + 1, i + length <= bytes.count, bytes[i + length - 1] == 10 else {
                throw .invalidInput("the archive has a malformed pax header")
            }
            let record = bytes[(j + 1)..<(i + length - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")) else { throw .invalidInput("the archive has a malformed pax header") }
            result[String(decoding: record[record.startIndex..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            i += length
        }
        return result
    }

    /// A name for a message: printable, short.
    static func shown(_ s: String) -> String {
        let printable = String(s.unicodeScalars.map { $0.value >= 32 && $0.value < 127 ? Character($0) : "?" })
        return printable.count > 80 ? String(printable.prefix(80)) + "…" : printable
    }
}
