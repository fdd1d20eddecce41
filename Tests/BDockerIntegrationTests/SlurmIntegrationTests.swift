import BDAPI
import BDBatch
import BDCore
import BDCredentials
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

/// SlurmWNController on the real cgroup v1 tree: configure from a spool directory as the Slurm
/// prolog leaves it (no process of the job yet), then `join` as the TaskProlog calls it, for
/// the job user's processes only and never for one already in a job tree. The whole path under
/// a real slurmd is tools/e2e-slurm.sh.
@Suite("Slurm on real cgroups", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine))
struct SlurmIntegrationTests {
    let config: TestConfig
    let node: WorkingNode

    init() throws {
        let engine = TestEnvironment.load()["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock"
        config = try TestConfig(replacing: ["controller = SGEWNController": "controller = SlurmWNController",
                                            "base_url = unix:///var/run/docker.sock": "base_url = \(engine)"])
        node = try Daemon(settings: config.settings, logger: Logger(label: "test")).workingNode()
    }

    /// A Slurm job's spool directory, with the line slurmctld writes for it.
    static func spool(id: String, user: PasswdEntry) -> TempDir {
        let dir = TempDir("bdocker-slurm-spool")
        dir.write("job", "JobId=\(id) JobName=sim UserId=\(user.name)(\(user.uid)) GroupId=\(user.name)(\(user.gid)) "
                  + "Account=(null) JobState=RUNNING TimeLimit=00:10:00 SubmitTime=2024-05-01T12:00:00 Partition=debug "
                  + "NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=2 MinMemoryCPU=100M Command=/x WorkDir=/tmp\n")
        dir.write("config", "ProctrackType           = proctrack/linuxproc\n")
        dir.write("node", "vm\n")
        return dir
    }

    /// A process running as `user` (the task slurmstepd would start).
    static func task(as user: PasswdEntry) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "/bin/sleep", "60"]
        try p.run()
        return p
    }

    static func cgroup(of pid: Int32) throws -> String {
        let text = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        return text.split(separator: "\n").first { $0.split(separator: ":")[1].split(separator: ",").contains("cpuacct") }
            .map { String($0.split(separator: ":", maxSplits: 2)[2]) } ?? ""
    }

    @Test func theTaskPrologsJoinPutsOnlyTheUsersFreeProcessesIntoCommon() async throws {
        let ann = try testUser(0), bob = try testUser(1)
        let id = "\(Int.random(in: 100_000...999_999))"
        let spool = Self.spool(id: id, user: ann)
        let (token, job) = try await node.configure(ConfigureRequest(userCredentials: UserCredentials(
            user: ann.name, uid: ann.uid, gid: ann.gid, home: ann.home, job: JobInfo(id: id, spool: spool.path))))
        let tree = "\(config.parentCgroup)/\(id)"
        #expect(job.cgroup == tree && job.parentPID == nil && job.queue == "debug")
        #expect(job.maxCPUSeconds == 1200 && job.maxMemBytes == 200 << 20)
        let caller = Caller.local(uid: ann.uid, pid: 1)

        let first = try Self.task(as: ann), second = try Self.task(as: ann), other = try Self.task(as: bob)
        defer { for p in [first, second, other] where p.isRunning { p.terminate() } }
        _ = try await node.join(JoinRequest(token: token, pid: Int(first.processIdentifier)), caller: caller)
        #expect(try Self.cgroup(of: first.processIdentifier) == tree + "/COMMON")
        // Again (a second step's TaskProlog for the same process): nothing to do.
        _ = try await node.join(JoinRequest(token: token, pid: Int(first.processIdentifier)), caller: caller)

        // Another user's process, or the token shown by another user: refused.
        await #expect(throws: BDockerError.self) {
            try await node.join(JoinRequest(token: token, pid: Int(other.processIdentifier)), caller: caller)
        }
        await #expect(throws: BDockerError.self) {
            try await node.join(JoinRequest(token: token, pid: Int(second.processIdentifier)), caller: .local(uid: bob.uid, pid: 1))
        }
        // A process in the job's tree outside COMMON stands for a container's: it stays there.
        for hierarchy in ["cpu", "cpuacct", "memory"] {
            let dir = "/sys/fs/cgroup/\(hierarchy)\(tree)/container"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try "\(second.processIdentifier)\n".write(toFile: dir + "/cgroup.procs", atomically: false, encoding: .utf8)
        }
        await #expect(throws: BDockerError.self) {
            try await node.join(JoinRequest(token: token, pid: Int(second.processIdentifier)), caller: caller)
        }
        #expect(try Self.cgroup(of: second.processIdentifier) == tree + "/container")
        await #expect(throws: BDockerError.self) {
            try await node.join(JoinRequest(token: token, pid: 0), caller: caller)
        }

        let (cleaned, accounted) = try await node.clean(CleanRequest(job: JobInfo(id: id)))
        #expect(cleaned.state == .cleaned && accounted)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpuacct\(tree)"))
        #expect(first.isRunning)
    }
}
