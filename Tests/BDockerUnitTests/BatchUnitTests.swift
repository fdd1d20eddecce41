import BDBatch
import BDConfig
import BDCore
import BDMetrics
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

@Suite("Batch: limits and usage arithmetic")
struct BatchArithmeticTests {
    @Test(arguments: [("0:0:5", 5.0), ("01:02:03", 3723.0), ("90", 90.0), ("2:30", 150.0), ("1.5", 1.5)])
    func cpuLimits(_ text: String, _ seconds: Double) throws {
        #expect(try JobLimits.seconds(text) == seconds)
    }

    @Test func infinityAndGarbage() throws {
        #expect(try JobLimits.seconds("INFINITY") == nil)
        #expect(try JobLimits.bytes("infinity") == nil)
        #expect(throws: BDockerError.self) { try JobLimits.seconds("ten") }
        #expect(throws: BDockerError.self) { try JobLimits.bytes("12Q") }
        #expect(throws: BDockerError.self) { try JobLimits.seconds("1:2:3:4") }
    }

    @Test(arguments: [("512M", Int64(536_870_912)), ("2G", Int64(2_147_483_648)), ("1k", Int64(1000)), ("100", Int64(100)),
                      ("1.5K", Int64(1536))])
    func memoryLimits(_ text: String, _ bytes: Int64) throws {
        #expect(try JobLimits.bytes(text) == bytes)
    }

    @Test func terminateMethods() {
        #expect(JobLimits.signal(nil) == SIGKILL)
        #expect(JobLimits.signal("SIGTERM") == SIGTERM)
        #expect(JobLimits.signal("term") == SIGTERM)
        #expect(JobLimits.signal("15") == 15)
        #expect(JobLimits.signal("/usr/local/bin/my-terminator") == SIGKILL)
    }

    func sample(_ t: Double, cpuTree: Int64, cpuCommon: Int64, memTree: Int64, memCommon: Int64, max: Int64 = 0) -> SampleRecord {
        SampleRecord(jobID: 1, takenAt: t, cpuNanosTree: cpuTree, cpuNanosCommon: cpuCommon, memBytesTree: memTree,
                     memBytesCommon: memCommon, maxMemBytesTree: max)
    }

    @Test func usageIntegralAndUnits() {
        let gib: Int64 = 1_073_741_824
        let samples = [
            sample(0, cpuTree: 0, cpuCommon: 0, memTree: 0, memCommon: 0),
            sample(10, cpuTree: 4_000_000_000, cpuCommon: 1_000_000_000, memTree: 2 * gib, memCommon: 0, max: 2 * gib),
            sample(20, cpuTree: 6_000_000_000, cpuCommon: 1_500_000_000, memTree: 2 * gib, memCommon: gib, max: 3 * gib),
        ]
        let docker = JobUsage.compute(samples: samples.shuffled(), onlyDocker: true)
        #expect(abs(docker.cpu - 4.5) < 1e-9)           // (6 - 1.5) s
        // Containers' memory: 0 → 2 GiB over 10 s (10 GB·s), then 2 → 1 GiB over 10 s (15 GB·s).
        #expect(abs(docker.mem - 25) < 1e-9)
        #expect(docker.maxvmem == Double(2 * gib))
        let whole = JobUsage.compute(samples: samples, onlyDocker: false)
        #expect(abs(whole.cpu - 6) < 1e-9)
        #expect(abs(whole.mem - 30) < 1e-9)             // 10 + 20
        #expect(whole.maxvmem == Double(3 * gib))       // the high-water mark
        #expect(JobUsage.compute(samples: [], onlyDocker: true) == JobUsage(cpu: 0, mem: 0, maxvmem: 0))
    }
}

/// A cgroup v1 layout in a temp dir, with counters the test sets: enough for the monitor.
struct FakeCgroups {
    let dir = TempDir("bdocker-fakecg")
    var root: String { dir.path }

    init() {
        for controller in ["cpu", "cpuacct", "memory"] {
            _ = dir.mkdir(controller)
            dir.write("\(controller)/tasks", "")
        }
        dir.write("cpu/cpu.shares", "1024")
        dir.write("cpuacct/cpuacct.usage", "0")
        dir.write("memory/memory.usage_in_bytes", "0")
    }

    /// Sets a job tree's counters (creating the files), as the kernel would.
    func set(_ cgroup: String, cpuTree: Int64, cpuCommon: Int64 = 0, memTree: Int64, memCommon: Int64 = 0, tasks: [Int] = []) {
        _ = dir.mkdir("cpuacct\(cgroup)/COMMON")
        _ = dir.mkdir("memory\(cgroup)/COMMON")
        dir.write("cpuacct\(cgroup)/cpuacct.usage", "\(cpuTree)\n")
        dir.write("cpuacct\(cgroup)/COMMON/cpuacct.usage", "\(cpuCommon)\n")
        dir.write("cpuacct\(cgroup)/tasks", tasks.map { "\($0)\n" }.joined())
        dir.write("memory\(cgroup)/memory.usage_in_bytes", "\(memTree)\n")
        dir.write("memory\(cgroup)/memory.max_usage_in_bytes", "\(memTree)\n")
        dir.write("memory\(cgroup)/COMMON/memory.usage_in_bytes", "\(memCommon)\n")
    }
}

@Suite("Batch: monitor on a fake cgroup tree")
struct MonitorUnitTests {
    let fake = FakeCgroups()
    let dbDir = TempDir("bdocker-mon")

    func settings() throws -> Settings {
        var s = try SettingsLoader.load(path: Repo.path("etc/configure_bdocker.cfg"))
        s.batch.cgroupsDir = fake.root
        return s
    }

    func liveJob(_ db: BDockerDatabase, key: String, cpuLimit: Double? = nil, memLimit: Int64? = nil) throws -> JobRecord {
        try db.pool.write { db in
            var job = JobRecord(batchJobID: key, taskID: nil, user: "ann", uid: 5000, gid: 5000, home: "/tmp", spoolDir: nil)
            job.cgroup = "/bdocker/\(key)"
            job.monitorState = .live
            job.maxCPUSeconds = cpuLimit
            job.maxMemBytes = memLimit
            try job.insert(db)
            return job
        }
    }

    @Test func tickSamplesEveryLiveJobAndEnforcesQuotas() async throws {
        let db = try BDockerDatabase.open(path: dbDir.file("w.sqlite"), role: "working", migrationsDir: nil)
        let controller = try SGEWNController(settings: try settings(), logger: Logger(label: "test"))
        // A real process stands in for the job's work, so the kill is observable.
        let victim = Process()
        victim.executableURL = URL(fileURLWithPath: "/bin/sleep")
        victim.arguments = ["60"]
        try victim.run()
        defer { if victim.isRunning { victim.terminate() } }

        let calm = try liveJob(db, key: "1", cpuLimit: 100, memLimit: 1 << 30)
        let greedy = try liveJob(db, key: "2", cpuLimit: 5)
        let fat = try liveJob(db, key: "3", memLimit: 1000)
        let gone = try liveJob(db, key: "4")
        fake.set(calm.cgroup!, cpuTree: 1_000_000_000, memTree: 500)
        fake.set(greedy.cgroup!, cpuTree: 6_000_000_000, memTree: 500, tasks: [Int(victim.processIdentifier)])
        fake.set(fat.cgroup!, cpuTree: 1, memTree: 5000)

        let stopped = StoppedJobs()
        let metrics = NodeMetrics()
        let monitor = JobMonitor(pool: db.pool, controller: controller, interval: .seconds(1), logger: Logger(label: "test"),
                                 metrics: metrics) {
            await stopped.add($0)
        }
        let report = try await monitor.tick(now: 1000)
        #expect(report.sampled == 3)
        #expect(report.vanished == ["4"])
        #expect(Set(report.killed) == ["2", "3"])
        #expect(await stopped.ids == Set([greedy.id!, fat.id!]))
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal && victim.terminationStatus == SIGKILL)

        let rows = try await db.pool.read { try JobRecord.fetchAll($0) }.reduce(into: [String: JobRecord]()) { $0[$1.jobKey] = $1 }
        #expect(rows["1"]?.monitorState == .live && rows["1"]?.failed == 0)
        #expect(rows["2"]?.monitorState == .killed && rows["2"]?.failed == 37 && rows["2"]?.exitStatus == 137)
        #expect(rows["2"]?.killReason?.contains("h_cpu") == true)
        #expect(rows["3"]?.monitorState == .killed && rows["3"]?.killReason?.contains("memory") == true)
        #expect(rows["4"]?.monitorState == .vanished)
        // All samples of the tick, one per sampled job.
        #expect(try await db.pool.read { try SampleRecord.fetchCount($0) } == 3)

        // Next tick: only the job still live is sampled; nothing is killed twice.
        let next = try await monitor.tick(now: 1010)
        #expect(next.sampled == 1 && next.killed.isEmpty)
        _ = gone
        // The kills by reason and both ticks, as Prometheus reads them.
        let scraped = try PrometheusText.parse(try #require(metrics.exposition).render())
        #expect(scraped.value("bdocker_monitor_jobs_killed_total", ["reason": "cpu"]) == 1)
        #expect(scraped.value("bdocker_monitor_jobs_killed_total", ["reason": "memory"]) == 1)
        #expect(scraped.value("bdocker_monitor_tick_duration_seconds_count") == 2)
    }

    @Test func monitorStateLivesOnlyInTheDatabase() async throws {
        let path = dbDir.file("w.sqlite")
        let job: JobRecord
        do {
            let db = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
            job = try liveJob(db, key: "9")
        }
        fake.set(job.cgroup!, cpuTree: 10, memTree: 10)
        // A new process (as after a restart) finds the job and samples it.
        let reopened = try BDockerDatabase.open(path: path, role: "working", migrationsDir: nil)
        let monitor = JobMonitor(pool: reopened.pool, controller: try SGEWNController(settings: try settings(), logger: Logger(label: "t")),
                                 interval: .seconds(1), logger: Logger(label: "t")) { _ in }
        #expect(try await monitor.tick().sampled == 1)
    }
}

actor StoppedJobs {
    var ids: Set<Int64> = []
    func add(_ id: Int64) { ids.insert(id) }
}

@Suite("Batch: job trees on a fake cgroup tree")
struct CgroupTreeUnitTests {
    let fake = FakeCgroups()

    /// A clean removes COMMON before the job's directory: a tick in between must not read
    /// COMMON as 0, which would charge the job's own CPU to its containers.
    @Test func aSampleWithoutCommonIsNoSample() throws {
        let hierarchies = try CgroupHierarchies(root: fake.root)
        fake.set("/bdocker/8", cpuTree: 5_000_000_000, cpuCommon: 4_900_000_000, memTree: 100, memCommon: 90)
        let reading = try #require(hierarchies.sample("/bdocker/8"))
        #expect(reading.cpuNanosTree - reading.cpuNanosCommon == 100_000_000)
        try FileManager.default.removeItem(atPath: "\(fake.root)/cpuacct/bdocker/8/COMMON")
        #expect(hierarchies.sample("/bdocker/8") == nil)
    }

    /// ru_utime and ru_stime: cpuacct.stat's ticks split the nanosecond total, containers only
    /// (tree minus COMMON) with only_docker_accounting; a missing or garbled file splits nothing.
    @Test func cpuStatSplitsUserAndSystemTime() throws {
        let hierarchies = try CgroupHierarchies(root: fake.root)
        fake.set("/bdocker/9", cpuTree: 4_000_000_000, memTree: 0)
        fake.dir.write("cpuacct/bdocker/9/cpuacct.stat", "user 350\nsystem 150\n")
        fake.dir.write("cpuacct/bdocker/9/COMMON/cpuacct.stat", "user 50\nsystem 50\n")
        let times = try #require(hierarchies.cpuTimes("/bdocker/9"))
        #expect(times == CPUTimes(userTree: 350, systemTree: 150, userCommon: 50, systemCommon: 50))
        #expect(abs(times.systemShare(onlyDocker: true) - 0.25) < 1e-12)   // 100 of 400 container ticks
        #expect(abs(times.systemShare(onlyDocker: false) - 0.30) < 1e-12)  // 150 of 500

        var job = JobRecord(batchJobID: "9", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/home/ann", spoolDir: nil,
                            createdAt: 1_700_000_000)
        job.cgroup = "/bdocker/9"
        let settings = try NumberSafetyTests.batchSettings(includeWallclock: true, defaultRuWallclock: 0)
        let record = AccountingRecordBuilder.record(job: job, usage: JobUsage(cpu: 4, mem: 0, maxvmem: 0), cpuTimes: times,
                                                    end: 1_700_000_100, settings: settings)
        #expect(abs(record.ruStime - 1) < 1e-9 && abs(record.ruUtime - 3) < 1e-9 && record.cpu == 4)
        let unsplit = AccountingRecordBuilder.record(job: job, usage: JobUsage(cpu: 4, mem: 0, maxvmem: 0), end: 1_700_000_100,
                                                     settings: settings)
        #expect(unsplit.ruStime == 0 && unsplit.ruUtime == 4)

        for garbled in ["", "user x\nsystem 1\n", "user 1\n", "system -1\nuser 1\n"] {
            fake.dir.write("cpuacct/bdocker/9/cpuacct.stat", garbled)
            #expect(hierarchies.cpuTimes("/bdocker/9") == nil, "\(garbled)")
        }
        try FileManager.default.removeItem(atPath: "\(fake.root)/cpuacct/bdocker/9/COMMON/cpuacct.stat")
        #expect(hierarchies.cpuTimes("/bdocker/9") == nil)
    }

    @Test func configureMakesTheTreeAndCleanRemovesItEverywhere() async throws {
        let hierarchies = try CgroupHierarchies(root: fake.root)
        try await hierarchies.createJobTree("/bdocker/7")
        for controller in ["cpu", "cpuacct", "memory"] {
            #expect(FileManager.default.fileExists(atPath: "\(fake.root)/\(controller)/bdocker/7/COMMON"))
        }
        try await hierarchies.removeJobTree("/bdocker/7")
        for controller in ["cpu", "cpuacct", "memory"] {
            #expect(!FileManager.default.fileExists(atPath: "\(fake.root)/\(controller)/bdocker/7"))
        }
    }

    /// A directory that will not go is retried for ~4.8 s; meanwhile the cooperative pool must
    /// stay free (with the retries asleep on its threads, this test's own sleep would not end).
    @Test(.timeLimit(.minutes(1))) func retryingARemovalHoldsNoThreadOfTheCooperativePool() async throws {
        let hierarchies = try CgroupHierarchies(root: fake.root)
        let count = max(2, ProcessInfo.processInfo.activeProcessorCount)
        for n in 0..<count {
            // A plain file stands for a task that never leaves: rmdir fails every time.
            _ = fake.dir.mkdir("memory/stuck\(n)")
            fake.dir.write("memory/stuck\(n)/keep", "")
        }
        let removals = (0..<count).map { n in
            Task { await failure { () async throws(BDockerError) in try await hierarchies.removeJobTree("/stuck\(n)") } }
        }
        // Measured from the start: a thread blocked by a retry would hold this sleep's wake-up
        // back until the removals gave up (4.8 s); the bound sits well between the two, so a
        // busy machine does not fail it.
        let before = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(300))
        #expect(ContinuousClock.now - before < .milliseconds(3500), "a 300 ms sleep took \(ContinuousClock.now - before)")
        for removal in removals {
            let error = await removal.value
            #expect(error?.message.contains("cannot remove cgroup") == true, "\(String(describing: error))")
        }
    }
}
