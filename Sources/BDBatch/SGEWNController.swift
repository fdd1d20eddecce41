import BDConfig
import BDCore
import BDStore
import Foundation
import Logging

/// Grid Engine on the working node. The prolog's environment has `SGE_JOB_SPOOL_DIR`, whose
/// `config` file (key=value lines) describes the job and whose `pid` file holds the shepherd's
/// pid: alive from prolog to epilog, and the parent of everything the job starts.
public struct SGEWNController: CgroupsWNController {
    public static let names = ["SGEWNController", "SGEController"]

    public let settings: Settings
    public let hierarchies: CgroupHierarchies?
    public let logger: Logger

    public init(settings: Settings, logger: Logger) throws(BDockerError) {
        self.settings = settings
        self.logger = logger
        hierarchies = settings.batch.enableCgroups ? try CgroupHierarchies(root: settings.batch.cgroupsDir) : nil
    }

    public func jobDetails(_ job: JobRecord) throws(BDockerError) -> JobDetails {
        var details = JobDetails()
        guard let spool = job.spoolDir else {
            // Without a spool directory (bdocker configure run by hand) there is nothing to read.
            return details
        }
        let config = try SGESpool.readConfig(spool + "/config")
        details.queue = config["queue"]
        details.host = config["host"]
        details.jobName = config["job_name"]
        details.account = config["account"]
        // Spool numbers are range-checked (SGESpoolParsing.swift, JobLimits): a bad
        // submission_time is ignored, an absurdly large h_cpu/h_data/h_vmem means no limit.
        details.submissionTime = SGESpool.submissionTime(config)
        details.maxCPUSeconds = try config["h_cpu"].flatMap { v throws(BDockerError) in try JobLimits.seconds(v) }
        let data = try config["h_data"].flatMap { v throws(BDockerError) in try JobLimits.bytes(v) }
        let vmem = try config["h_vmem"].flatMap { v throws(BDockerError) in try JobLimits.bytes(v) }
        details.maxMemBytes = [data, vmem].compactMap { $0 }.min()
        details.terminateMethod = config["terminate_method"]
        if let owner = config["job_owner"], owner != job.user {
            throw .forbidden("the spool says job \(job.batchJobID) belongs to \(owner), not \(job.user)")
        }
        if let configured = config["job_id"], configured != job.batchJobID {
            throw .invalidInput("the spool \(spool) is job \(configured)'s, not job \(job.batchJobID)'s")
        }
        if hierarchies != nil {
            details.parentPID = try SGESpool.readPID(spool + "/pid")
        }
        return details
    }
}
