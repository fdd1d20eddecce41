@testable import BDBatch
import BDTestSupport
import Foundation
import Testing

/// The monitor's counter reader: files kept open and read with pread, forgotten when gone.
@Suite("Counter files")
struct CounterFilesTests {
    let dir = TempDir("bdocker-counters")

    @Test func readsKeepsOpenAndFollowsChanges() throws {
        let counters = CounterFiles(capacity: 10)
        let file = dir.write("cpuacct.usage", "12345\n")
        #expect(counters.read(file) == 12345)
        #expect(counters.openCount == 1)
        // A counter that changes is read afresh through the kept descriptor (pread at 0).
        try "7\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(counters.read(file) == 7)
        #expect(counters.openCount == 1)
    }

    @Test func aRemovedFileIsNilOnceAskedWhetherItIsStillLinked() throws {
        let counters = CounterFiles(capacity: 10)
        let job = dir.mkdir("bdocker/7")
        let file = dir.write("bdocker/7/cpuacct.usage", "99\n")
        #expect(counters.read(file, verifyLinked: true) == 99)
        try FileManager.default.removeItem(atPath: job)
        #expect(counters.read(file, verifyLinked: true) == nil)
        #expect(counters.openCount == 0)
        // Made again (a new job of the same name): the new file, not the old one.
        _ = dir.mkdir("bdocker/7")
        dir.write("bdocker/7/cpuacct.usage", "5\n")
        #expect(counters.read(file, verifyLinked: true) == 5)
    }

    @Test func forgetClosesATreesFilesAndCapacityBoundsWhatStaysOpen() {
        let counters = CounterFiles(capacity: 2)
        let files = (1...3).map { dir.write("c\($0)", "\($0)\n") }
        for (i, file) in files.enumerated() { #expect(counters.read(file) == Int64(i + 1)) }
        #expect(counters.openCount == 2)
        #expect(counters.read(files[2]) == 3)  // read, not kept
        counters.forget(under: dir.path + "/")
        #expect(counters.openCount == 0)
        #expect(CounterFiles(capacity: 0).read(files[0]) == 1)
    }

    @Test(arguments: [("0\n", Int64(0)), (" 42 \n", 42), ("99999999999999999999", CgroupHierarchies.largestCounter),
                      ("-1", nil), ("", nil), ("12a", nil), ("\n", nil)])
    func parsesCountersFromBytes(text: String, expected: Int64?) {
        #expect(CgroupHierarchies.parseCounter(text) == expected)
    }
}
