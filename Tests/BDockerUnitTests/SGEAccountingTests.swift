@testable import BDAccounting
@testable import BDBatch
import BDCore
import BDTestSupport
import Foundation
import Testing

/// Sample accounting records for the accounting suites.
enum SampleAccounting {
    /// A plausible finished job; `variant` changes the usage so two records differ.
    static func record(job: Int, task: Int = 0, host: String = "node1", owner: String = "ann", queue: String = "all.q",
                       account: String = "sge", start: Int = 1_764_403_200, variant: Double = 0) -> SGEAccountingRecord {
        var r = SGEAccountingRecord(qname: queue, hostname: host, group: "users", owner: owner, jobName: "burn-\(job)",
                                    jobNumber: job, account: account, taskNumber: task,
                                    submissionTime: start - 30, startTime: start, endTime: start + 120 + job % 7)
        r.ruUtime = 50.25 + variant
        r.ruStime = 1.5
        r.ruMaxrss = 4044
        r.ruMinflt = 824
        r.ruInblock = 504
        r.ruNvcsw = 106
        r.cpu = 51.75 + Double(job % 13) + variant
        r.mem = 12.5 + Double(job % 5) / 4
        r.io = 0.015625
        r.iow = 0.25
        r.maxvmem = Double(1 + job % 3) * 1_073_741_824
        r.category = "-U staff -q \(queue)"
        return r
    }
}

@Suite("SGE accounting line")
struct SGEAccountingTests {
    /// A line as Grid Engine 8.1.9 wrote it (from a real accounting file).
    static let real = "E5-2667v2h6deb128:c8220node213:psmn:gilquin:envtest:3:sge:0:1514125071:1514125093:1514125792:100:152:699:"
        + "0.000000:0.144000:3972.000000:0:0:0:0:709:3:0:504.000000:808:0:0:0:45215:27:NONE:defaultdepartment:NONE:1:0:"
        + "21540.800000:2567485.677115:1.884987:-U STAFF -q E5-2667v2h6deb128:0.000000:NONE:128215048192.000000:0:0"

    @Test func aRealLineParsesAndRendersIdentically() throws {
        let record = try SGEAccountingRecord.parse(Self.real)
        #expect(record.qname == "E5-2667v2h6deb128")
        #expect(record.owner == "gilquin")
        #expect(record.jobNumber == 3)
        #expect(record.failed == 100 && record.exitStatus == 152)
        #expect(record.ruWallclock == 699)
        #expect(record.cpu == 21540.8)
        #expect(record.category == "-U STAFF -q E5-2667v2h6deb128")
        #expect(record.maxvmem == 128_215_048_192)
        #expect(record.arSubmissionTime == 0)
        #expect(record.line() == Self.real)
        #expect(SGEAccountingRecord.fields.count == 45)
        #expect(SGEAccountingRecord.fields.last?.name == "ar_submission_time")
    }

    @Test func recordLineRecordRoundTrip() throws {
        for job in [1, 42, 99_999] {
            let record = SampleAccounting.record(job: job, task: job % 4)
            let line = record.line()
            #expect(!line.contains("\n"))
            #expect(line.split(separator: ":", omittingEmptySubsequences: false).count == 45)
            #expect(try SGEAccountingRecord.parse(line) == record)
        }
    }

    @Test func decimalsAreWrittenWithSixPlacesAndReadInAnyPlainForm() throws {
        var record = SampleAccounting.record(job: 7)
        record.cpu = 0.1
        #expect(record.line().contains(":0.100000:"))
        var fields = record.line().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        fields[36] = "1e2"
        #expect(try SGEAccountingRecord.parse(fields.joined(separator: ":")).cpu == 100)
        fields[36] = "3"
        #expect(try SGEAccountingRecord.parse(fields.joined(separator: ":")).cpu == 3)
    }

    @Test func theJSONFormRoundTripsWithSGENames() throws {
        let record = SampleAccounting.record(job: 12, task: 3)
        let data = try JSONEncoder().encode(record)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == Set(SGEAccountingRecord.fields.map(\.name)))
        #expect(object["job_number"] as? Int == 12)
        #expect(object["pe_taskid"] as? String == "NONE")
        #expect(try JSONDecoder().decode(SGEAccountingRecord.self, from: data) == record)
    }

    /// Every way a line can be wrong, and the reason given.
    @Test(arguments: [
        ("", "empty"),
        ("A\nB", "newline"),
        ("None", "1 colon-separated field;"),
        ("{'x': 1}", "2 colon-separated fields"),
    ])
    func malformedTextIsRefused(_ input: String, _ reason: String) {
        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(input) }
        do {
            _ = try SGEAccountingRecord.parse(input)
        } catch {
            #expect(error.message.contains(reason), "\(error.message)")
            #expect(error.httpStatus == 400)
        }
    }

    @Test func everyBrokenFieldIsNamed() {
        let good = SampleAccounting.record(job: 5).line()
        var fields = good.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func refused(_ index: Int, _ value: String) -> String {
            var copy = fields
            copy[index] = value
            do {
                _ = try SGEAccountingRecord.parse(copy.joined(separator: ":"))
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(refused(36, "NaN").contains("field 37 (cpu)"))
        #expect(refused(36, "nan").contains("not a decimal number"))
        #expect(refused(36, "inf").contains("not a decimal number"))
        #expect(refused(36, "1e999").contains("not a finite number"))
        #expect(refused(36, "-1.5").contains("field 37 (cpu)"))
        #expect(refused(36, "0x10").contains("not a decimal number"))
        #expect(refused(5, "12a").contains("field 6 (job_number)"))
        #expect(refused(13, "100.5").contains("field 14 (ru_wallclock) is '100.5', not a whole number"))
        #expect(refused(13, "-3").contains("not a whole number"))
        #expect(refused(3, "").contains("field 4 (owner) is empty"))
        #expect(refused(0, "#all.q").contains("comment"))
        #expect(refused(4, "a\rb").contains("carriage return"))
        #expect(refused(4, "a\u{0}b").contains("NUL"))
        #expect(refused(4, "a\u{1b}b").contains("U+001B"))
        #expect(refused(4, "tab\tok") == "accepted")

        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(fields.dropLast().joined(separator: ":")) }
        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(good + ":0") }
        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(good + "\n") }
        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(good + "\n" + good) }
        fields[3] = "a:b"
        #expect(throws: BDockerError.self) { try SGEAccountingRecord.parse(fields.joined(separator: ":")) }
    }

    @Test func theJSONFormIsValidatedAsItIsDecoded() throws {
        let good = try JSONSerialization.jsonObject(with: JSONEncoder().encode(SampleAccounting.record(job: 9))) as! [String: Any]
        func decode(_ change: (inout [String: Any]) -> Void) -> String {
            var object = good
            change(&object)
            do {
                let data = try JSONSerialization.data(withJSONObject: object)
                _ = try JSONDecoder().decode(SGEAccountingRecord.self, from: data)
                return "accepted"
            } catch let error as BDockerError {
                return error.message
            } catch {
                return "decoding: \(error)"
            }
        }
        #expect(decode { _ in } == "accepted")
        #expect(decode { $0["owner"] = "ann:x" }.contains("contains ':'"))
        #expect(decode { $0["job_name"] = "two\nlines" }.contains("newline"))
        #expect(decode { $0["hostname"] = "" }.contains("empty"))
        #expect(decode { $0["cpu"] = -1 }.contains("negative"))
        #expect(decode { $0["slots"] = -1 }.contains("negative"))
        #expect(decode { $0["x"] = 1 }.contains("'x' is not an SGE accounting field"))
        #expect(decode { $0["cpu"] = "NaN" }.hasPrefix("decoding"))
        #expect(decode { $0.removeValue(forKey: "maxvmem") }.hasPrefix("decoding"))
    }

    @Test func theHeaderIsWhatGridEngineWrites() {
        let lines = SGEAccountingRecord.fileHeader.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines == ["# Version: 8.1.9", "# ", "# DO NOT MODIFY THIS FILE MANUALLY!", "# ", ""])
    }

    /// Grid Engine's own reader takes the header and our lines (skipped without qacct).
    @Test(.requires(.qacct)) func qacctReadsTheHeaderAndOurLines() async throws {
        guard FileManager.default.isExecutableFile(atPath: Qacct.path) else { return }
        let dir = TempDir("bdocker-sge")
        var record = SampleAccounting.record(job: 4242, owner: "zoe")
        record.cpu = 81.75
        record.mem = 12.5
        record.maxvmem = 2_147_483_648
        let file = dir.write("accounting", SGEAccountingRecord.fileHeader + record.line() + "\n")
        let job = try await Qacct.job(file: file, 4242)
        #expect(job["owner"] == "zoe")
        #expect(job["cpu"] == "81.750s")
        #expect(job["mem"] == "12.500GBs")
        #expect(job["maxvmem"] == "2.000GB")
        #expect(job["category"] == "-U staff -q all.q")
        #expect(job["ru_wallclock"] == "\(record.ruWallclock)s")
    }
}

@Suite("SGE decimals")
struct SGEDecimalTests {
    /// The fast formatter writes exactly what `String(format: "%.6f")` writes: stored lines
    /// written before it must compare equal to lines it writes for the same record.
    @Test func sixDecimalsIsExactlyPrintfs() {
        var rng = SystemRandomNumberGenerator()
        var values: [Double] = [0, 0.5, 0.0000005, 0.0000015, 0.0000025, 1e-7, 2.5e-7, 123.4567895, 1e15, 1e300,
                                Double.greatestFiniteMagnitude, Double.leastNonzeroMagnitude, 4_294_967_296.123456,
                                // Exact ties at the sixth place (k + 1/2 millionths is a binary
                                // fraction): printf rounds them to even.
                                0.0078125, 0.0234375, 1.0078125, 4_503_599_626.9921875, 4_503_599_627.0, 4_503_599_628.5]
        for k in 0..<2_000 { values.append(Double(k) / 128) }
        for _ in 0..<20_000 {
            values.append(Double(bitPattern: UInt64.random(in: 0...0x7FEF_FFFF_FFFF_FFFF, using: &rng)))
            values.append(Double.random(in: 0..<10_000_000, using: &rng))
            values.append(Double(Int.random(in: 0..<100_000_000, using: &rng)) / 1_000_000)
        }
        let mismatches = values.filter { SGEAccountingRecord.sixDecimals($0) != String(format: "%.6f", $0) }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }
}
