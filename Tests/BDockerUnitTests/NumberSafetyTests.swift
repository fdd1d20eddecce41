@testable import BDAccounting
@testable import BDBatch
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import Testing

/// Every number a job's submitter controls (spool `config` and `pid`, cgroup files the job's
/// processes show up in, configuration numbers, accounting lines) is range-checked: an absurd
/// value is refused with a message naming it, or means "unlimited", and never traps the daemon.
/// tools/fuzz.sh runs the same parsers under libFuzzer.
@Suite("Number safety: input never traps")
struct NumberSafetyTests {
    // MARK: JobLimits (h_vmem, h_data, h_cpu)

    /// Memory limits too large to mean anything are no limit, like INFINITY.
    @Test(arguments: ["99999999999999999999", "1e300G", "1e400", "99999999999999999999T", "4194305T"])
    func absurdMemoryLimitsAreUnlimited(_ text: String) throws {
        #expect(try JobLimits.bytes(text) == nil)
    }

    @Test func memoryLimitBoundary() throws {
        // 2^62 bytes is 4 Mi TiB: the largest limit kept; one TiB more is none.
        let largestInTiB = JobLimits.largestBytes / 1_099_511_627_776
        #expect(try JobLimits.bytes("\(largestInTiB)T") == JobLimits.largestBytes)
        #expect(try JobLimits.bytes("\(largestInTiB + 1)T") == nil)
        #expect(try JobLimits.bytes("\(JobLimits.largestBytes)") == JobLimits.largestBytes)
    }

    /// Words Double(String) would take, and negatives, are refused with the value in the message.
    @Test(arguments: ["nan", "inf", "-inf", "NaNG", "infT", "-1", "-1G", "1k5"])
    func nonNumbersAreNotMemorySizes(_ text: String) {
        #expect {
            try JobLimits.bytes(text)
        } throws: { error in
            guard case BDockerError.invalidInput(let message) = error else { return false }
            return message.contains("'\(text)'") && message.contains("memory size")
        }
    }

    @Test(arguments: ["99999999:00:00", "1e400", "1e308:0:0", "1e300", "99999999999999999999"])
    func absurdCPULimitsAreUnlimited(_ text: String) throws {
        #expect(try JobLimits.seconds(text) == nil)
    }

    @Test func cpuLimitBoundary() throws {
        #expect(try JobLimits.seconds(String(JobLimits.largestSeconds)) == JobLimits.largestSeconds)
        #expect(try JobLimits.seconds(String(JobLimits.largestSeconds + 1)) == nil)
        // 100 years, as the doc comment says.
        #expect(JobLimits.largestSeconds == 100 * 365.25 * 86_400)
    }

    @Test(arguments: ["nan", "inf", "-5", "1:nan:0", "0:-1:0", "infinity:0"])
    func nonNumbersAreNotTimes(_ text: String) {
        #expect {
            try JobLimits.seconds(text)
        } throws: { error in
            guard case BDockerError.invalidInput(let message) = error else { return false }
            return message.contains("'\(text)'") && message.contains("not a time")
        }
    }

    @Test func signalsFromHugeNumbersFallBackToKill() {
        #expect(JobLimits.signal("99999999999999999999") == SIGKILL)
        #expect(JobLimits.signal("-9") == SIGKILL)
        #expect(JobLimits.signal("65") == SIGKILL)
    }

    @Test func wholeSecondsNeverTraps() {
        #expect(JobLimits.wholeSeconds(.nan) == 0)
        #expect(JobLimits.wholeSeconds(-.infinity) == 0)
        #expect(JobLimits.wholeSeconds(-5) == 0)
        #expect(JobLimits.wholeSeconds(.infinity) == Int(JobLimits.largestTimestamp))
        #expect(JobLimits.wholeSeconds(1e300) == Int(JobLimits.largestTimestamp))
        #expect(JobLimits.wholeSeconds(12.9) == 12)
    }

    // MARK: SGE spool

    /// The exact crash of the issue: a spool config whose h_vmem overflowed Int64.
    @Test func spoolConfigWithAbsurdLimits() throws {
        let config = SGESpool.parseConfig("h_vmem=99999999999999999999\nh_data=1e300G\nh_cpu=1e308:0:0\n")
        #expect(try JobLimits.bytes(config["h_vmem"]!) == nil)
        #expect(try JobLimits.bytes(config["h_data"]!) == nil)
        #expect(try JobLimits.seconds(config["h_cpu"]!) == nil)
    }

    /// A submission time that is no usable epoch time is ignored (the record then uses the start).
    @Test(arguments: ["nan", "inf", "-inf", "1e400", "1e20", "-5", "soon", "", "253402300800"])
    func unusableSubmissionTimesAreIgnored(_ value: String) {
        #expect(SGESpool.submissionTime(SGESpool.parseConfig("job_id=1\nsubmission_time=\(value)\n")) == nil)
    }

    @Test func usableSubmissionTime() {
        let now = Date().timeIntervalSince1970.rounded(.down)
        #expect(SGESpool.submissionTime(SGESpool.parseConfig("submission_time=\(Int(now))\n")) == now)
    }

    @Test func spoolConfigLineEndings() {
        let config = SGESpool.parseConfig("a=1\r\nb=2\rc=x=y\n\nnot a pair\n")
        #expect(config == ["a": "1", "b": "2", "c": "x=y"])
    }

    /// A pid must fit pid_t and be a possible pid: from 2 to pid_max - 1.
    @Test(arguments: ["2147483648", "99999999999999999999", "-1", "0", "1", "", "12abc", "9223372036854775807"])
    func impossiblePIDsAreRefused(_ text: String) {
        #expect {
            try SGESpool.parsePID(text + "\n", path: "/spool/pid", pidMax: 4_194_304)
        } throws: { error in
            guard case BDockerError.invalidInput(let message) = error else { return false }
            return message.contains("/spool/pid") && message.contains("'\(text)'")
        }
    }

    @Test func pidMaxBoundary() throws {
        let pidMax = SGESpool.pidMax()
        #expect(pidMax > 2 && pidMax <= Int(Int32.max))
        #expect(try SGESpool.parsePID(" \(pidMax - 1)\n", path: "pid", pidMax: pidMax) == pidMax - 1)
        #expect(throws: BDockerError.self) { try SGESpool.parsePID("\(pidMax)", path: "pid", pidMax: pidMax) }
        // A pid_max above what pid_t holds is capped there.
        #expect(throws: BDockerError.self) { try SGESpool.parsePID("\(Int(Int32.max) + 1)", path: "pid", pidMax: Int.max) }
    }

    /// Through the file reader too: before, `pid_t(pid)` trapped for a pid above Int32.max.
    @Test func pidFileAboveInt32IsRefused() throws {
        let dir = TempDir("bdocker-numbers")
        let path = dir.write("pid", "2147483648\n")
        #expect(throws: BDockerError.self) { try SGESpool.readPID(path) }
        #expect(try SGESpool.readPID(dir.write("pid2", "\(getpid())\n")) == Int(getpid()))
    }

    @Test func pidMaxFileGarbageFallsBackToPidT() {
        let dir = TempDir("bdocker-numbers")
        #expect(SGESpool.pidMax(dir.write("a", "99999999999999999999\n")) == Int(Int32.max))
        #expect(SGESpool.pidMax(dir.write("b", "-3\n")) == Int(Int32.max))
        #expect(SGESpool.pidMax(dir.file("missing")) == Int(Int32.max))
        #expect(SGESpool.pidMax(dir.write("c", "32768\n")) == 32_768)
    }

    // MARK: cgroup files

    @Test func tasksKeepOnlyPIDsThatFitPidT() {
        let pids = CgroupHierarchies.parseTasks("1\n-5\n2147483648\n99999999999999999999\nabc\n\n42\n")
        #expect(pids == [1, 42])
        #expect(pids.allSatisfy { pid_t(exactly: $0) != nil })
    }

    @Test func countersAreClampedSoUsageArithmeticCannotOverflow() {
        let largest = CgroupHierarchies.largestCounter
        #expect(CgroupHierarchies.parseCounter("99999999999999999999\n") == largest)
        #expect(CgroupHierarchies.parseCounter("\(Int64.max)") == largest)
        #expect(CgroupHierarchies.parseCounter("-1") == nil)
        #expect(CgroupHierarchies.parseCounter("") == nil)
        #expect(CgroupHierarchies.parseCounter(" 123\n") == 123)
        // Sums and differences of two readings stay in Int64.
        #expect(largest.addingReportingOverflow(largest).overflow == false)
        #expect((0 as Int64).subtractingReportingOverflow(largest).overflow == false)
        // JobUsage adds two readings per step.
        let s1 = SampleRecord(jobID: 1, takenAt: 0, cpuNanosTree: largest, cpuNanosCommon: 0, memBytesTree: largest,
                              memBytesCommon: 0, maxMemBytesTree: largest)
        var s2 = s1
        s2.takenAt = 10
        let usage = JobUsage.compute(samples: [s1, s2], onlyDocker: false)
        #expect(usage.mem.isFinite && usage.cpu.isFinite)
    }

    /// Rows from before counters were clamped may hold any Int64; usage is still finite and never negative.
    @Test(arguments: [(Int64.max, Int64.min), (Int64.min, Int64.max), (Int64.min, Int64.min), (Int64.max, Int64.max)])
    func storedCountersAtTheInt64ExtremesDoNotTrap(tree: Int64, common: Int64) {
        for onlyDocker in [true, false] {
            let s1 = SampleRecord(jobID: 1, takenAt: 0, cpuNanosTree: tree, cpuNanosCommon: common, memBytesTree: tree,
                                  memBytesCommon: common, maxMemBytesTree: tree)
            var s2 = s1
            s2.takenAt = 10
            let usage = JobUsage.compute(samples: [s1, s2], onlyDocker: onlyDocker)
            for value in [usage.cpu, usage.mem, usage.maxvmem] { #expect(value.isFinite && value >= 0) }
        }
    }

    // MARK: accounting records

    static func batchSettings(includeWallclock: Bool, defaultRuWallclock: Double) throws -> Settings.Batch {
        let ini = try INIFile(path: "t.cfg", text: "[resource]\nrole = accounting\n[server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /tmp/x\n")
        var batch = try SettingsLoader.settings(from: ini).batch
        batch.includeWallclock = includeWallclock
        batch.defaultRuWallclock = defaultRuWallclock
        return batch
    }

    /// Before, `Int(job.submissionTime ?? start)` trapped for nan, inf or 1e400 from a spool.
    @Test(arguments: [Double.nan, .infinity, -.infinity, 1e300, -5])
    func unusableSubmissionTimeInARowBecomesTheStart(_ submission: Double) throws {
        var job = JobRecord(batchJobID: "7", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/home/ann", spoolDir: nil,
                            createdAt: 1_700_000_000)
        job.startTime = 1_700_000_010
        job.submissionTime = submission
        let record = AccountingRecordBuilder.record(job: job, usage: JobUsage(cpu: 1, mem: 1, maxvmem: 1), end: 1_700_000_100,
                                                    settings: try Self.batchSettings(includeWallclock: true, defaultRuWallclock: 0))
        #expect(record.submissionTime == record.startTime)
        #expect(throws: Never.self) { try record.validate() }
    }

    @Test func absurdTimesAndIdsInARowDoNotTrap() throws {
        var job = JobRecord(batchJobID: "-5", taskID: "99999999999999999999", user: "ann", uid: -1, gid: -1, home: "/h",
                            spoolDir: nil, createdAt: .nan)
        job.startTime = .infinity
        let settings = try Self.batchSettings(includeWallclock: false, defaultRuWallclock: 1e300)
        let record = AccountingRecordBuilder.record(job: job, usage: JobUsage(cpu: 0, mem: 0, maxvmem: 0), end: .nan,
                                                    settings: settings)
        #expect(record.jobNumber == 0 && record.taskNumber == 0)
        #expect(record.startTime == Int(JobLimits.largestTimestamp))
        #expect(record.ruWallclock == Int(JobLimits.largestTimestamp))
        #expect(throws: Never.self) { try record.validate() }
    }

    /// ":\u{301}" is one Swift Character that is not ":", but qacct splits the bytes.
    @Test func combiningMarkAfterAColonCannotHideASeparator() throws {
        var job = JobRecord(batchJobID: "8", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/h", spoolDir: nil)
        job.jobName = "a:\u{301}b\u{1}c"
        job.queue = "#\u{301}q"
        let record = AccountingRecordBuilder.record(job: job, usage: JobUsage(cpu: 0, mem: 0, maxvmem: 0), end: job.createdAt + 1,
                                                    settings: try Self.batchSettings(includeWallclock: true, defaultRuWallclock: 0))
        #expect(throws: Never.self) { try record.validate() }
        #expect(record.line().utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false).count
                == SGEAccountingRecord.fields.count)

        var bad = record
        bad.jobName = "a:\u{301}b"
        #expect(throws: BDockerError.self) { try bad.validate() }
        bad = record
        bad.qname = "#\u{301}q"
        #expect(throws: BDockerError.self) { try bad.validate() }
        // A line whose job name holds ":\u{301}" has 46 fields for qacct: refused, as such.
        #expect {
            try SGEAccountingRecord.parse(record.line().replacingOccurrences(of: "a_\u{301}b", with: "a:\u{301}b"))
        } throws: { error in
            "\(error)".contains("46")
        }
    }

    /// Field 5 is job_number (an integer), field 36 cpu (a decimal): out-of-range or non-numeric
    /// text in either is refused, and the error names the field.
    @Test(arguments: [(5, "job_number", "99999999999999999999"), (5, "job_number", "-1"), (5, "job_number", "1e3"),
                      (5, "job_number", "nan"), (36, "cpu", "1e400"), (36, "cpu", "nan"), (36, "cpu", "inf"),
                      (36, "cpu", "-1.0")])
    func accountingNumericFieldsAreRangeChecked(field: Int, name: String, value: String) throws {
        var fields = SGEAccountingRecord(qname: "q", hostname: "h", group: "g", owner: "o", jobName: "j", jobNumber: 1,
                                         submissionTime: 1, startTime: 2, endTime: 3).line()
            .split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        fields[field] = value
        #expect {
            try SGEAccountingRecord.parse(fields.joined(separator: ":"))
        } throws: { error in
            guard case BDockerError.invalidInput(let message) = error else { return false }
            return message.contains(name)
        }
    }

    // MARK: configuration

    static func config(batch extra: String) -> String {
        "[resource]\nrole = accounting\n[server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /tmp/x\n\(extra)\n"
    }

    /// Before, default_ru_wallclock had only a minimum and `Int(1e300)` trapped when a record was
    /// built; monitoring_time went into Duration.seconds.
    @Test(arguments: ["default_ru_wallclock", "monitoring_time"],
          ["1e300", "1e400", "nan", "inf", "99999999999999999999", "-1"])
    func absurdConfigSecondsAreRefused(_ key: String, _ value: String) throws {
        let ini = try INIFile(path: "n.cfg", text: Self.config(batch: "\(key) = \(value)"))
        #expect {
            try SettingsLoader.settings(from: ini)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.key == key && error.section == "batch" && error.description.contains(value)
        }
    }

    @Test func configSecondsUpToTheBoundAreKept() throws {
        let ini = try INIFile(path: "n.cfg", text: Self.config(batch: "default_ru_wallclock = 3155760000\nmonitoring_time = 0.5"))
        let batch = try SettingsLoader.settings(from: ini).batch
        #expect(batch.defaultRuWallclock == 3_155_760_000)
        #expect(batch.monitoringTime == 0.5)
    }

    @Test(arguments: ["port", "workers", "timeout"])
    func absurdConfigIntegersAreRefused(_ key: String) throws {
        let ini = try INIFile(path: "n.cfg", text: Self.config(batch: "").replacingOccurrences(
            of: "[server]\n", with: "[server]\n\(key) = 99999999999999999999\n"))
        #expect {
            try SettingsLoader.settings(from: ini)
        } throws: { error in
            (error as? ConfigError)?.key == key
        }
    }

    // MARK: the INI reader (found while fuzzing it)

    /// Before, "\r\n" — one Character in Swift — was not split at "\n", so a CRLF file was one
    /// long line and refused.
    @Test func crlfAndCRLineEndings() throws {
        let ini = try INIFile(path: "w.cfg", text: "[a]\r\nk = v\r\n\r\n[b]\rx = 1\ry = 2\n")
        #expect(ini.sectionOrder == ["a", "b"])
        #expect(ini.entry("a", "k")?.value == "v")
        #expect(ini.entry("a", "k")?.line == 2)
        #expect(ini.entry("b", "y")?.value == "2")
        #expect(ini.entry("b", "y")?.line == 6)
    }

    @Test func sectionWithoutANameIsRefused() {
        #expect {
            try INIFile(path: "w.cfg", text: "[ ]\nk = v\n")
        } throws: { error in
            (error as? ConfigError)?.line == 1
        }
    }
}
