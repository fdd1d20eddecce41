import BDAPI
import BDAccounting
import BDBatch
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

/// The batch module on the real cgroup v1 tree and the test Docker engine: an SGE-like job
/// (a spool directory with `config` and `pid`, a shepherd process), configure, containers,
/// monitor, clean.
@Suite("Batch on real cgroups", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine))
struct BatchIntegrationTests {
    /// A pretend SGE job: spool dir and a shepherd shell that, once told, burns CPU itself
    /// (in COMMON) and then idles until the epilog.
    final class FakeSGEJob: @unchecked Sendable {
        // @unchecked: immutable after init; the process is only signalled.
        let spool: TempDir
        let shepherd: Process
        let id = "\(Int.random(in: 100_000...999_999))"

        init(user: PasswdEntry, limits: [String: String] = [:], selfBurnSeconds: Int = 0) throws {
            spool = TempDir("bdocker-spool")
            let go = spool.file("go")
            shepherd = Process()
            shepherd.executableURL = URL(fileURLWithPath: "/bin/sh")
            shepherd.arguments = ["-c", "while [ ! -e \(go) ]; do sleep 0.05; done; "
                + "end=$(($(date +%s) + \(selfBurnSeconds))); while [ $(date +%s) -lt $end ]; do :; done; exec sleep 600"]
            try shepherd.run()
            var config = ["job_id": id, "job_owner": user.name, "queue": "all.q", "host": ProcessInfo.processInfo.hostName,
                          "job_name": "bdtest", "account": "sge", "submission_time": "\(Int(Date().timeIntervalSince1970))"]
            for (k, v) in limits { config[k] = v }
            spool.write("config", config.map { "\($0)=\($1)\n" }.joined())
            spool.write("pid", "\(shepherd.processIdentifier)\n")
        }

        func go() { _ = FileManager.default.createFile(atPath: spool.file("go"), contents: nil) }

        deinit { if shepherd.isRunning { shepherd.terminate() } }
    }

    /// Spins until the shell itself has used 2 s of CPU (utime + stime in /proc, 100 ticks a
    /// second): CPU time, not wall time, so a busy machine cannot make it burn less.
    static let burnTwoCPUSeconds = "while :; do read -r line < /proc/$$/stat; set -- $line; [ $(( ${14} + ${15} )) -ge 200 ] && break; done"

    struct Node {
        let config: TestConfig
        let daemon: Daemon
        let node: WorkingNode
        let image: String
    }

    func makeNode(onlyDocker: Bool = true, cgroups: Bool = true) throws -> Node {
        try #require(geteuid() == 0, "real cgroups need root")
        let env = TestEnvironment.load()
        let config = try TestConfig(replacing: [
            "base_url = unix:///var/run/docker.sock": "base_url = \(env["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock")",
            "only_docker_accounting = true": "only_docker_accounting = \(onlyDocker)",
            "enable_cgroups = true": "enable_cgroups = \(cgroups)",
        ])
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        return Node(config: config, daemon: daemon, node: try daemon.workingNode(),
                    image: env["BDOCKER_TEST_IMAGE"] ?? "127.0.0.1:5055/busybox:latest")
    }

    func configure(_ n: Node, _ job: FakeSGEJob, _ user: PasswdEntry) async throws -> String {
        try await n.node.configure(ConfigureRequest(adminToken: n.config.adminToken, userCredentials: UserCredentials(
            user: user.name, uid: user.uid, gid: user.gid, home: user.home,
            job: JobInfo(id: job.id, taskID: nil, spool: job.spool.path)))).token
    }

    func cgroupDir(_ n: Node, _ controller: String, _ job: FakeSGEJob) -> String {
        "/sys/fs/cgroup/\(controller)\(n.config.parentCgroup)/\(job.id)"
    }

    func outbox(_ n: Node, _ job: FakeSGEJob) async throws -> SGEAccountingRecord {
        let json = try await n.node.database.pool.read { db in
            try String.fetchOne(db, sql: "SELECT o.record FROM outbox o JOIN jobs j ON j.id = o.job_id WHERE j.batch_job_id = ?",
                                arguments: [job.id])
        }
        return try JSONDecoder().decode(SGEAccountingRecord.self, from: Data(try #require(json).utf8))
    }

    @Test func configureMakesTheTreeAndCleanRemovesItWithATaskInside() async throws {
        let n = try makeNode()
        let user = try testUser()
        let job = try FakeSGEJob(user: user)
        let token = try await configure(n, job, user)
        for controller in ["cpu", "cpuacct", "memory"] {
            let common = cgroupDir(n, controller, job) + "/COMMON"
            #expect(FileManager.default.fileExists(atPath: common), "\(common)")
            let tasks = try String(contentsOfFile: common + "/tasks", encoding: .utf8)
            #expect(tasks.split(separator: "\n").contains("\(job.shepherd.processIdentifier)"))
        }
        let row = try await n.node.database.pool.read { try JobRecord.filter(Column("batch_job_id") == job.id).fetchOne($0) }
        #expect(row?.queue == "all.q" && row?.jobName == "bdtest" && row?.monitorState == .live)
        #expect(row?.cgroup == "\(n.config.parentCgroup)/\(job.id)")
        // The shepherd is still inside: clean must move it out and remove the tree anyway.
        let (cleaned, accounted) = try await n.node.clean(CleanRequest(adminToken: n.config.adminToken, token: token))
        #expect(cleaned.state == .cleaned && accounted)
        for hierarchy in try FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup") {
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(hierarchy)\(n.config.parentCgroup)/\(job.id)"))
        }
        #expect(job.shepherd.isRunning)
    }

    @Test func withoutCgroupsConfigureWorksAndAccountingIsUnavailable() async throws {
        let n = try makeNode(cgroups: false)
        let user = try testUser()
        let job = try FakeSGEJob(user: user, limits: ["h_cpu": "0:1:00"])
        let token = try await configure(n, job, user)
        let row = try await n.node.database.pool.read { try JobRecord.filter(Column("batch_job_id") == job.id).fetchOne($0) }
        #expect(row?.cgroup == nil && row?.monitorState == .unmonitored && row?.maxCPUSeconds == 60)
        #expect(!FileManager.default.fileExists(atPath: cgroupDir(n, "cpuacct", job)))
        let (_, accounted) = try await n.node.clean(CleanRequest(adminToken: n.config.adminToken, token: token))
        #expect(!accounted)
        #expect(try await n.node.database.pool.read { try OutboxRecord.fetchCount($0) } == 0)
    }

    @Test func containerCPUIsAccountedAndTheJobsOwnExcluded() async throws {
        let n = try makeNode(onlyDocker: true)
        let user = try testUser()
        let job = try FakeSGEJob(user: user, selfBurnSeconds: 2)
        let token = try await configure(n, job, user)
        job.go()  // the job's own shell burns 2 s in COMMON
        _ = try await n.node.pull(PullRequest(token: token, source: n.image), caller: .root) { _ in }
        let run = try await n.node.createContainer(RunRequest(
            token: token, imageID: n.image, script: ["sh", "-c", Self.burnTwoCPUSeconds],
            detach: true, workingDir: nil, volumes: []))
        let docker = try #require(n.node.docker)
        try await docker.start(run.id)
        #expect(try await docker.wait(run.id) == 0)
        try await Task.sleep(for: .milliseconds(300))
        _ = try await n.node.clean(CleanRequest(adminToken: n.config.adminToken, token: token))
        let record = try await outbox(n, job)
        let cpu = record.cpu
        #expect(cpu >= 1.5, "the container burned 2 s, the record says \(cpu)")
        #expect(cpu < 3.4, "the shell's own ~2 s in COMMON must be excluded, the record says \(cpu)")
        #expect(record.owner == user.name && "\(record.jobNumber)" == job.id && record.qname == "all.q")
        #expect(record.failed == 0 && record.mem > 0 && record.maxvmem > 0)
    }

    @Test func cpuQuotaKillsTheJobWithinTwoTicks() async throws {
        let n = try makeNode()
        let user = try testUser()
        let job = try FakeSGEJob(user: user, limits: ["h_cpu": "0:0:2"])
        let token = try await configure(n, job, user)
        _ = try await n.node.pull(PullRequest(token: token, source: n.image), caller: .root) { _ in }
        let run = try await n.node.createContainer(RunRequest(
            token: token, imageID: n.image, script: ["sh", "-c", "while :; do :; done"], detach: true, workingDir: nil, volumes: []))
        let docker = try #require(n.node.docker)
        try await docker.start(run.id)
        let monitor = try #require(n.node.monitor(interval: .seconds(1)))
        // One-second ticks until the kill (a loaded machine gives the loop less than a core,
        // so the count of ticks is judged against the CPU the samples saw, not the clock).
        var ticks = 0, killed = false
        while !killed && ticks < 30 {
            try await Task.sleep(for: .seconds(1))
            ticks += 1
            killed = try await monitor.tick().killed.contains(job.id)
        }
        #expect(killed)
        let cpu = try await n.node.database.pool.read { db in
            try Int64.fetchAll(db, sql: """
                SELECT s.cpu_ns_tree FROM samples s JOIN jobs j ON j.id = s.job_id WHERE j.batch_job_id = ? ORDER BY s.taken_at
                """, arguments: [job.id])
        }
        // The first sample at or over h_cpu (2 s) is the tick that kills: within two ticks of crossing it.
        let firstOver = try #require(cpu.firstIndex { $0 >= 2_000_000_000 })
        #expect(firstOver == cpu.count - 1, "samples \(cpu): the kill came \(cpu.count - 1 - firstOver) ticks late")
        let state = try await docker.inspect(run.id)
        #expect(state["State"]?["Running"] == .bool(false), "the container still runs")
        _ = try await n.node.clean(CleanRequest(adminToken: n.config.adminToken, token: token))
        let record = try await outbox(n, job)
        #expect(record.failed == 37 && record.exitStatus == 137)
    }

    @Test func memoryQuotaKillsTheJob() async throws {
        let n = try makeNode()
        let user = try testUser()
        let job = try FakeSGEJob(user: user, limits: ["h_vmem": "40M"])
        let token = try await configure(n, job, user)
        _ = try await n.node.pull(PullRequest(token: token, source: n.image), caller: .root) { _ in }
        // Holds ~64 MiB in a shell variable.
        let run = try await n.node.createContainer(RunRequest(
            token: token, imageID: n.image,
            script: ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 60"], detach: true, workingDir: nil, volumes: []))
        let docker = try #require(n.node.docker)
        try await docker.start(run.id)
        let monitor = try #require(n.node.monitor(interval: .seconds(1)))
        var killed = false
        for _ in 0..<10 where !killed {
            try await Task.sleep(for: .seconds(1))
            killed = try await monitor.tick().killed.contains(job.id)
        }
        #expect(killed)
        _ = try await n.node.clean(CleanRequest(adminToken: n.config.adminToken, token: token))
        let record = try await outbox(n, job)
        #expect(record.failed == 37 && record.exitStatus == 137)
        // The kill judges the whole job tree; with only_docker_accounting the record counts the
        // containers only: the tree's peak less what COMMON (the job's own processes) held.
        let common = try await n.node.database.pool.read { db in
            try Int64.fetchOne(db, sql: """
                SELECT MAX(s.mem_bytes_common) FROM samples s JOIN jobs j ON j.id = s.job_id WHERE j.batch_job_id = ?
                """, arguments: [job.id]) ?? 0
        }
        #expect(record.maxvmem + Double(common) >= 40 * 1_048_576, "maxvmem \(record.maxvmem), COMMON up to \(common)")
        #expect(record.maxvmem >= 32 * 1_048_576, "the containers' peak is most of the 40M quota")
    }
}
