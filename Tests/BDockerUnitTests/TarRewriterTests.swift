@testable import BDCore
import BDTestSupport
import Testing

/// The tar stream between a user's tar and the engine: whatever headers come in, what goes out
/// is the job user's, without special bits, devices, fifos, escapes or links out.
@Suite("Tar rewriter")
struct TarRewriterTests {
    static let user = TarRewriter.Policy(uid: 1001, gid: 1001)

    /// A header the way an attacker writes it: any owner, any mode, any type.
    static func entry(_ name: String, type: Character = "0", mode: Int64 = 0o644, uid: Int = 0, data: [UInt8] = [],
                      link: String = "") -> [UInt8] {
        var out = TarRewriter.header(name: name, mode: mode, uid: uid, gid: uid, size: Int64(data.count), mtime: 1_700_000_000,
                                     type: UInt8(ascii: type.unicodeScalars.first!), link: link)
        out += data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        return out
    }

    static let end = [UInt8](repeating: 0, count: 1024)

    /// Rewrites `input` fed in chunks of `chunk` bytes.
    static func rewrite(_ input: [UInt8], _ policy: TarRewriter.Policy = user, chunk: Int = 7) throws(BDockerError) -> [UInt8] {
        var rewriter = TarRewriter(policy: policy)
        var out: [UInt8] = []
        var i = 0
        while i < input.count {
            out += try rewriter.feed(Array(input[i..<min(i + chunk, input.count)]))
            i += chunk
        }
        return out + (try rewriter.finish())
    }

    /// (name, uid, gid, mode, type) of every entry of a GNU archive.
    static func list(_ tar: [UInt8]) throws -> [(String, Int64, Int64, Int64, UInt8)] {
        var result: [(String, Int64, Int64, Int64, UInt8)] = []
        var i = 0
        var longName: String?
        while i + 512 <= tar.count {
            let h = Array(tar[i..<(i + 512)])
            if h.allSatisfy({ $0 == 0 }) { break }
            #expect(TarRewriter.checksumOK(h))
            let size = Int(try TarRewriter.number(h, 124, 12, what: "size"))
            let data = Array(tar[(i + 512)..<(i + 512 + size)])
            if h[156] == UInt8(ascii: "L") {
                longName = TarRewriter.cString(data)
            } else {
                result.append((longName ?? TarRewriter.string(h, 0, 100), try TarRewriter.number(h, 108, 8, what: "uid"),
                               try TarRewriter.number(h, 116, 8, what: "gid"), try TarRewriter.number(h, 100, 8, what: "mode"), h[156]))
                longName = nil
            }
            i += 512 + (size + 511) / 512 * 512
        }
        return result
    }

    @Test func aUidZeroSetuidHeaderArrivesAsTheUsersPlainFile() throws {
        let input = Self.entry("bin", type: "5", mode: 0o4755) + Self.entry("bin/sh", mode: 0o6755, data: Array("#!x".utf8))
            + Self.entry("t", type: "5", mode: 0o1777) + Self.end
        let entries = try Self.list(try Self.rewrite(input))
        #expect(entries.map(\.0) == ["bin", "bin/sh", "t"])
        for (name, uid, gid, mode, _) in entries {
            #expect(uid == 1001 && gid == 1001, "\(name)")
            #expect(mode & 0o7000 == 0, "\(name) keeps mode \(String(mode, radix: 8))")
        }
    }

    @Test(arguments: [
        ("a device node", Self.entry("dev", type: "3")),
        ("a block device", Self.entry("blk", type: "4")),
        ("a fifo", Self.entry("fifo", type: "6")),
        ("an absolute name", Self.entry("/etc/passwd", data: [1])),
        ("a '..' name", Self.entry("a/../../etc/passwd", data: [1])),
        ("a hard link out", Self.entry("h", type: "1", link: "/etc/shadow")),
        ("a hard link to nothing here", Self.entry("h", type: "1", link: "elsewhere")),
        ("an entry below its own symlink", Self.entry("l", type: "2", link: "/etc") + Self.entry("l/passwd", data: [1])),
        ("a GNU sparse file", Self.entry("s", type: "S")),
    ])
    func dangerousEntriesAreRefused(_ what: String, _ entry: [UInt8]) {
        #expect(throws: BDockerError.self, "\(what)") { try Self.rewrite(entry + Self.end) }
    }

    @Test func linksInsideTheArchiveLongNamesAndPaxPassThrough() throws {
        let long = String(repeating: "d", count: 120) + "/f"
        var pax = Array("30 path=from/pax/named/file\n".utf8)
        pax = Array("\(pax.count) ".utf8) + Array("path=from/pax/named/file\n".utf8)
        let input = Self.entry("f", data: [1, 2, 3]) + Self.entry("hard", type: "1", link: "f")
            + Self.entry("sym", type: "2", link: "/anywhere") + TarRewriter.longEntry(UInt8(ascii: "L"), long)
            + Self.entry("ignored", data: [4]) + Self.entry("PaxHeader", type: "x", data: pax) + Self.entry("short", data: [5]) + Self.end
        let names = try Self.list(try Self.rewrite(input, chunk: 512 * 3 + 5)).map(\.0)
        #expect(names == ["f", "hard", "sym", long, "from/pax/named/file"])
    }

    @Test func theTopEntryIsRenamedAndTheLimitHolds() throws {
        let input = Self.entry("src", type: "5") + Self.entry("src/a", data: [1]) + Self.entry("srcX", data: [2]) + Self.end
        let renamed = TarRewriter.Policy(uid: 1, gid: 1, rename: ("src", "dst"))
        #expect(try Self.list(try Self.rewrite(input, renamed)).map(\.0) == ["dst", "dst/a", "srcX"])
        let small = TarRewriter.Policy(uid: 1, gid: 1, maxBytes: 100)
        let big = Self.entry("big", data: [UInt8](repeating: 7, count: 101)) + Self.end
        #expect(throws: BDockerError.self) { try Self.rewrite(big, small) }
    }

    @Test func cutOffOrDamagedArchivesAreRefused() {
        let good = Self.entry("f", data: [UInt8](repeating: 1, count: 600))
        #expect(throws: BDockerError.self) { try Self.rewrite(Array(good.prefix(700))) }
        var damaged = good
        damaged[10] ^= 0xff
        #expect(throws: BDockerError.self) { try Self.rewrite(damaged + Self.end) }
        #expect(throws: BDockerError.self) { try Self.rewrite([]) }
    }
}
