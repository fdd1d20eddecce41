@testable import BDBatch
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import Testing

/// SlurmWNController on what Slurm 22.05's `scontrol show job -o` prints (copied from a real
/// slurmctld on Debian 12), and the job's limits from it.
@Suite("Batch: Slurm job descriptions")
struct SlurmUnitTests {
    static func line(id: String = "41", array: String = "", name: String = "my job", user: String = "ann(1000)",
                     account: String = "(null)", time: String = "00:02:00", cpus: String = "2", nodes: String = "1",
                     memory: String = "MinMemoryNode=50M", tail: String = "") -> String {
        "JobId=\(id) \(array)JobName=\(name) UserId=\(user) GroupId=ann(1000) MCS_label=N/A Priority=4294901759 Nice=0 "
            + "Account=\(account) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 "
            + "Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=\(time) TimeMin=N/A SubmitTime=2024-05-01T12:00:00 "
            + "EligibleTime=2024-05-01T12:00:00 AccrueTime=2024-05-01T12:00:00 StartTime=2024-05-01T12:00:02 "
            + "EndTime=2024-05-01T12:02:02 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2024-05-01T12:00:02 "
            + "Scheduler=Main Partition=bdocker AllocNode:Sid=localhost:23300 ReqNodeList=(null) ExcNodeList=(null) "
            + "NodeList=vm BatchHost=vm NumNodes=\(nodes) NumCPUs=\(cpus) NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
            + "TRES=cpu=1,mem=50M,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 "
            + "\(memory) MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 "
            + "Licenses=(null) Network=(null) Command=(null) WorkDir=/home/ann StdErr=/dev/null StdIn=/dev/null "
            + "StdOut=/dev/null Power= \(tail)\n"
    }

    static func job(_ id: String = "41", task: String? = nil, user: String = "ann", uid: Int = 1000) -> JobRecord {
        JobRecord(batchJobID: id, taskID: task, user: user, uid: uid, gid: 1000, home: "/home/\(user)", spoolDir: "/run/x/\(id)")
    }

    static let config = ["ProctrackType": "proctrack/linuxproc"]

    @Test func aPlainJob() throws {
        let info = try SlurmJob.parse(Self.line())
        #expect(info.jobID == "41" && info.arrayJobID == nil && info.jobName == "my job")
        #expect(info.userName == "ann" && info.uid == 1000 && info.account == nil && info.partition == "bdocker")
        #expect(info.timeLimit == 120 && info.numCPUs == 2 && info.memoryPerNode == 50 << 20)
        // CPU time: the wall-clock limit times the CPUs held.
        #expect(info.cpuSecondsPerNode == 240 && info.memoryBytesPerNode == 50 << 20)
        #expect(info.submitTime == SlurmJob.time("2024-05-01T12:00:00") && info.submitTime != nil)

        let details = try SlurmWNController.details(info, config: Self.config, node: "vm\n", job: Self.job(), cgroups: true)
        #expect(details.queue == "bdocker" && details.host == "vm" && details.jobName == "my job")
        #expect(details.account == "slurm" && details.maxCPUSeconds == 240 && details.maxMemBytes == 50 << 20)
        #expect(details.parentPID == nil && details.terminateMethod == nil)
    }

    /// An array task is <array job>.<task> (as SGE's), though Slurm gives it a job id too.
    @Test func anArrayTask() throws {
        let info = try SlurmJob.parse(Self.line(id: "45", array: "ArrayJobId=44 ArrayTaskId=3 ", account: "physics"))
        #expect(info.jobID == "45" && info.arrayJobID == "44" && info.arrayTaskID == "3")
        let details = try SlurmWNController.details(info, config: Self.config, node: nil, job: Self.job("44", task: "3"), cgroups: true)
        #expect(details.account == "physics" && details.host == "vm")
        for wrong in [Self.job("45"), Self.job("44"), Self.job("44", task: "2")] {
            #expect(throws: BDockerError.self) { try SlurmWNController.details(info, config: Self.config, node: nil, job: wrong, cgroups: true) }
        }
    }

    @Test func anotherUsersJobIsRefused() throws {
        let info = try SlurmJob.parse(Self.line())
        for job in [Self.job(user: "bob"), Self.job(uid: 1001)] {
            #expect {
                try SlurmWNController.details(info, config: Self.config, node: nil, job: job, cgroups: true)
            } throws: { ($0 as? BDockerError)?.httpStatus == 403 }
        }
    }

    /// Slurm moves tasks into its own cgroups under proctrack/cgroup: said at configure.
    @Test func proctrackCgroupIsRefusedAtConfigure() throws {
        let info = try SlurmJob.parse(Self.line())
        let cgroup = ["ProctrackType": "proctrack/cgroup"]
        #expect {
            try SlurmWNController.details(info, config: cgroup, node: nil, job: Self.job(), cgroups: true)
        } throws: { ($0 as? BDockerError)?.message.contains("proctrack/cgroup is not supported") == true }
        // Without cgroups bdocker has no tree for Slurm to take tasks out of.
        _ = try SlurmWNController.details(info, config: cgroup, node: nil, job: Self.job(), cgroups: false)
        #expect(SlurmJob.parseConfig("Prolog                  = /x/prolog.sh\nProctrackType           = proctrack/cgroup\n")
                    == ["Prolog": "/x/prolog.sh", "ProctrackType": "proctrack/cgroup"])
    }

    /// A job name, comment or path is the user's: one holding " TimeLimit=UNLIMITED" must not
    /// lift the limit. Every key read must appear once, or the job is refused.
    @Test(arguments: [" TimeLimit=UNLIMITED", " MinMemoryNode=0", " NumCPUs=64", " UserId=root(0)", " Partition=other",
                      " MinMemoryCPU=1T"])
    func forgedFieldsAreRefused(_ forged: String) throws {
        #expect(throws: BDockerError.self) { try SlurmJob.parse(Self.line(name: "x" + forged)) }
        #expect(throws: BDockerError.self) { try SlurmJob.parse(Self.line(tail: "Comment=y" + forged)) }
    }

    /// Slurm prints MinMemoryNode or MinMemoryCPU: a forged one beside the real other is refused;
    /// array ids are read only before the job name, where nothing is the user's.
    @Test func memoryPerCPUAndForgedAbsentKeys() throws {
        let perCPU = try SlurmJob.parse(Self.line(cpus: "4", memory: "MinMemoryCPU=1G"))
        #expect(perCPU.memoryBytesPerNode == 4 << 30 && perCPU.memoryPerNode == nil)
        #expect(throws: BDockerError.self) { try SlurmJob.parse(Self.line(name: "x MinMemoryNode=99T", memory: "MinMemoryCPU=1G")) }
        let plain = try SlurmJob.parse(Self.line(name: "x ArrayJobId=1 ArrayTaskId=1", tail: "Comment= JobId=7"))
        #expect(plain.jobID == "41" && plain.arrayJobID == nil && plain.arrayTaskID == nil)
        #expect(plain.jobName == "x ArrayJobId=1 ArrayTaskId=1")
    }

    @Test(arguments: [("UNLIMITED", nil), ("Partition_Limit", nil), ("00:01:00", 60.0), ("1-00:00:00", 86_400.0),
                      ("2-03:04:05", 183_845.0), ("10:00", 600.0), ("99999999-00:00:00", nil)] as [(String, Double?)])
    func timeLimits(_ text: String, _ seconds: Double?) throws {
        #expect(try SlurmJob.timeLimit(text) == seconds)
    }

    @Test(arguments: ["", "-1:00", "1-", "ten", "1:2:3:4", "x-01:00:00", "1.5-01:00:00"])
    func badTimeLimits(_ text: String) {
        #expect(throws: BDockerError.self) { try SlurmJob.timeLimit(text) }
    }

    @Test(arguments: [("50M", Int64(50 << 20)), ("2G", Int64(2 << 30)), ("1.50G", Int64(1536) << 20), ("100", Int64(100 << 20)),
                      ("512K", Int64(512 << 10)), ("0", nil), ("0M", nil), ("99999999P", nil)] as [(String, Int64?)])
    func memorySizes(_ text: String, _ bytes: Int64?) throws {
        #expect(try SlurmJob.memory(text) == bytes)
    }

    @Test(arguments: ["12Q", "M", "-5M", "nanM", "1.5Q"])
    func badMemorySizes(_ text: String) {
        #expect(throws: BDockerError.self) { try SlurmJob.memory(text) }
    }

    /// A multi-node job's limits are per node: its CPUs spread over its nodes.
    @Test func multiNodeLimitsArePerNode() throws {
        let info = try SlurmJob.parse(Self.line(time: "00:10:00", cpus: "8", nodes: "2", memory: "MinMemoryCPU=100M"))
        #expect(info.cpusPerNode == 4 && info.cpuSecondsPerNode == 2400 && info.memoryBytesPerNode == 400 << 20)
        let unlimited = try SlurmJob.parse(Self.line(time: "UNLIMITED", memory: "MinMemoryNode=0"))
        #expect(unlimited.cpuSecondsPerNode == nil && unlimited.memoryBytesPerNode == nil)
    }

    @Test(arguments: ["", "\n", Self.line() + Self.line(), "JobName=x UserId=ann(1000) NumCPUs=1",
                      Self.line(user: "ann"), Self.line(user: "(1000)"), Self.line(user: "ann(-1)"), Self.line(cpus: "0"),
                      Self.line(cpus: "many"), Self.line(time: "soon")])
    func unusableDescriptions(_ text: String) {
        #expect(throws: BDockerError.self) { try SlurmJob.parse(text) }
    }

    /// A line cut short (a job name holding a newline) lacks the limits: refused, never read
    /// as a job without limits.
    @Test func aCutLineIsRefused() {
        let whole = Self.line()
        for key in [" TimeLimit=", " Partition=", " MinMemoryNode="] {
            let cut = String(whole[..<whole.range(of: key)!.lowerBound])
            #expect(throws: BDockerError.self) { try SlurmJob.parse(cut) }
        }
        #expect(throws: BDockerError.self) { try SlurmJob.parse(Self.line(name: "x\nJobId=41 TimeLimit=UNLIMITED")) }
    }

    @Test func badTimesAreIgnored() {
        for text in ["Unknown", "2024-13-45T99:00:00", "2024-05-01T12:00:00Z", "", "N/A"] {
            #expect(SlurmJob.time(text) == nil, "\(text)")
        }
    }

    /// What the prolog leaves in its spool directory, read by the controller as configure does.
    @Test func jobDetailsFromASpoolDirectory() throws {
        let dir = TempDir("bdocker-slurm-spool")
        dir.write("job", Self.line())
        dir.write("config", "Configuration data as of 2024-05-01T12:00:00\nProctrackType           = proctrack/linuxproc\n")
        dir.write("node", "node7\n")
        var settings = try SettingsLoader.load(path: Repo.path("etc/configure_bdocker.cfg"))
        settings.batch.enableCgroups = false
        settings.batch.controller = "SlurmWNController"
        let controller = try BatchRegistry.make(settings: settings, logger: Logger(label: "test"))
        #expect(controller is SlurmWNController)
        guard let slurm = controller as? SlurmWNController else { return }
        var job = Self.job()
        job.spoolDir = dir.path
        let details = try slurm.jobDetails(job)
        #expect(details.queue == "bdocker" && details.host == "node7" && details.maxCPUSeconds == 240)
        job.spoolDir = dir.path + "/missing"
        #expect(throws: BDockerError.self) { try slurm.jobDetails(job) }
        job.spoolDir = nil
        #expect(try slurm.jobDetails(job) == JobDetails())
    }

    /// The client finds the token file of the job its environment names.
    @Test func theJobTheEnvironmentNames() {
        #expect(TokenFile.job(fromEnvironment: ["SLURM_JOB_ID": "45", "SLURM_ARRAY_JOB_ID": "44", "SLURM_ARRAY_TASK_ID": "3"])! == ("44", "3"))
        #expect(TokenFile.job(fromEnvironment: ["SLURM_JOB_ID": "45", "JOB_ID": "9"])! == ("45", nil))
        #expect(TokenFile.job(fromEnvironment: ["JOB_ID": "9", "SGE_TASK_ID": "undefined"])! == ("9", nil))
        #expect(TokenFile.job(fromEnvironment: ["JOB_ID": "9", "SGE_TASK_ID": "2"])! == ("9", "2"))
        #expect(TokenFile.job(fromEnvironment: ["SLURM_JOB_ID": ""]) == nil)
        #expect(TokenFile.job(fromEnvironment: [:]) == nil)
    }

    /// What `join` reads of a process before moving it.
    @Test func processFacts() {
        let status = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1001\t1002\t1001\t1001\nGid:\t1001\t1001\t1001\t1001\n"
        #expect(ProcessFacts.uids(status)! == (1001, 1002))
        #expect(ProcessFacts.uids("Name:\tx\n") == nil)
        let membership = "12:pids:/user.slice\n5:cpu,cpuacct:/bdocker/44.3/COMMON\n4:memory:/bdocker/44.3/COMMON\n0::/\n"
        #expect(ProcessFacts.cgroup(membership, controller: "cpuacct") == "/bdocker/44.3/COMMON")
        #expect(ProcessFacts.cgroup(membership, controller: "memory") == "/bdocker/44.3/COMMON")
        #expect(ProcessFacts.cgroup(membership, controller: "freezer") == nil)
    }
}
