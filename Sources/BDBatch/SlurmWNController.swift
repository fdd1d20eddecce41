import BDConfig
import BDCore
import BDStore
import Foundation
import Logging

/// Slurm on the working node. Slurm's root Prolog knows the job (`SLURM_JOB_ID`, the user)
/// but no process of it: the tasks start later, from slurmstepd, and each runs the TaskProlog
/// as the job's user first. So:
/// - the prolog (etc/slurm/prolog.sh) puts what Slurm says of the job into a root-only spool
///   directory: `job` (`scontrol show job -o $SLURM_JOB_ID`), `config` (`scontrol show config`)
///   and `node` (`$SLURMD_NODENAME`), and passes it as `bdocker configure --spool`;
/// - `jobDetails` reads it: queue = partition, limits from the job's request, and no parent
///   pid (nothing to put into COMMON at configure);
/// - the TaskProlog (etc/slurm/taskprolog.sh) runs `bdocker join --pid $SLURM_TASK_PID` with
///   the job's token, and `join` (CgroupsWNController) moves the task into COMMON.
/// With `ProctrackType=proctrack/cgroup` Slurm moves every task into cgroups of its own
/// (`slurm/uid_*/job_*`) and would take them back out of COMMON: refused at configure.
public struct SlurmWNController: CgroupsWNController {
    public static let names = ["SlurmWNController"]

    public let settings: Settings
    public let hierarchies: CgroupHierarchies?
    public let logger: Logger

    public init(settings: Settings, logger: Logger) throws(BDockerError) {
        self.settings = settings
        self.logger = logger
        hierarchies = settings.batch.enableCgroups ? try CgroupHierarchies(root: settings.batch.cgroupsDir) : nil
    }

    public func jobDetails(_ job: JobRecord) throws(BDockerError) -> JobDetails {
        guard let spool = job.spoolDir else {
            // bdocker configure run by hand: nothing to read.
            return JobDetails()
        }
        let info = try SlurmJob.parse(try Self.read(spool + "/job", what: "the Slurm job description"))
        let config = SlurmJob.parseConfig(try Self.read(spool + "/config", what: "Slurm's configuration"))
        return try Self.details(info, config: config, node: try? Self.read(spool + "/node", what: ""), job: job,
                                cgroups: hierarchies != nil)
    }

    /// The job's details from what the prolog gathered, checked against the job configure
    /// names (its id, task and user must be the ones Slurm describes).
    static func details(_ info: SlurmJobInfo, config: [String: String], node: String?, job: JobRecord,
                        cgroups: Bool) throws(BDockerError) -> JobDetails {
        let proctrack = config["ProctrackType"] ?? "unknown"
        if cgroups, proctrack.hasSuffix("/cgroup") {
            throw .invalidInput("Slurm's ProctrackType=\(proctrack) is not supported: Slurm would move the job's tasks into its own "
                + "cgroups (slurm/uid_*/job_*), out of bdocker's job tree; use ProctrackType=proctrack/linuxproc on bdocker's nodes")
        }
        // An array task is configured as <array job>.<task>, like SGE's job.task; Slurm gives
        // each task a job id of its own besides.
        let (expectedJob, expectedTask) = info.arrayJobID.map { ($0, info.arrayTaskID) } ?? (info.jobID, nil)
        guard expectedJob == job.batchJobID, expectedTask == job.taskID else {
            throw .invalidInput("the Slurm job description is job \(expectedJob)\(expectedTask.map { "." + $0 } ?? "")'s, not job \(job.jobKey)'s")
        }
        guard info.userName == job.user, info.uid == job.uid else {
            throw .forbidden("Slurm says job \(job.jobKey) belongs to \(info.userName) (uid \(info.uid)), not \(job.user)")
        }
        var details = JobDetails()
        details.queue = info.partition
        let trimmed = node?.trimmingCharacters(in: .whitespacesAndNewlines)
        details.host = trimmed?.isEmpty == false ? trimmed : info.batchHost
        details.jobName = info.jobName
        // SGE's records say "sge" when a job names no account; Slurm's say "slurm".
        details.account = info.account ?? "slurm"
        details.submissionTime = info.submitTime
        details.maxCPUSeconds = info.cpuSecondsPerNode
        details.maxMemBytes = info.memoryBytesPerNode
        details.parentPID = nil
        return details
    }

    static func read(_ path: String, what: String) throws(BDockerError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .invalidInput("cannot read \(what) \(path) (did the Slurm prolog write it?)")
        }
        return text
    }
}
