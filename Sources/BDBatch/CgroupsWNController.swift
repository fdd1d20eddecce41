import BDConfig
import BDCore
import BDStore
import Foundation
import Logging

/// The cgroup behaviour every cgroup-based batch controller shares: a job tree
/// `<parent_cgroup>/<job>` with a `COMMON` child for the job's own processes, so the tree minus
/// COMMON is what the containers used. A conforming type supplies only what its batch system
/// knows (`jobDetails`); nothing batch-specific lives here.
public protocol CgroupsWNController: WNController {
    var settings: Settings { get }
    /// Nil when `[batch] enable_cgroups` is off.
    var hierarchies: CgroupHierarchies? { get }
    var logger: Logger { get }

    /// What the batch system knows of the job (limits, names, the parent process).
    func jobDetails(_ job: JobRecord) throws(BDockerError) -> JobDetails
}

extension CgroupsWNController {
    public func configureEnvironment(_ job: inout JobRecord) async throws(BDockerError) {
        let record = job
        // The batch system's files (SGE's spool) may be on NFS: read them off the cooperative pool.
        let details = try await BlockingWork.run { [self] () throws(BDockerError) in try jobDetails(record) }
        job.queue = details.queue
        job.host = details.host
        job.jobName = details.jobName
        job.account = details.account
        job.submissionTime = details.submissionTime
        job.maxCPUSeconds = details.maxCPUSeconds
        job.maxMemBytes = details.maxMemBytes
        job.terminateMethod = details.terminateMethod
        job.parentPID = details.parentPID
        job.startTime = job.startTime ?? Date().timeIntervalSince1970
        guard let hierarchies else {
            job.monitorState = .unmonitored
            return
        }
        let path = settings.batch.parentCgroup.trimmingSlashes + "/" + job.jobKey
        let cgroup = "/" + path.trimmingSlashes
        try await hierarchies.createJobTree(cgroup)
        if let pid = details.parentPID {
            do {
                try await hierarchies.addToCommon(cgroup, pid: pid)
            } catch {
                try? await hierarchies.removeJobTree(cgroup)
                throw error
            }
        }
        job.cgroup = cgroup
        job.monitorState = .live
    }

    public func cgroupParent(of job: JobRecord) -> String? { job.cgroup }

    public func sample(_ job: JobRecord) -> CgroupReading? {
        sample(cgroup: job.cgroup)
    }

    public func sample(cgroup: String?) -> CgroupReading? {
        guard let hierarchies, let cgroup else { return nil }
        return hierarchies.sample(cgroup)
    }

    public func cpuTimes(_ job: JobRecord) -> CPUTimes? {
        guard let hierarchies, let cgroup = job.cgroup else { return nil }
        return hierarchies.cpuTimes(cgroup)
    }

    public func join(_ job: JobRecord, pid: Int) async throws(BDockerError) {
        // Without cgroups there is no COMMON to join, and nothing to refuse.
        guard let hierarchies, let cgroup = job.cgroup else { return }
        let parent = "/" + settings.batch.parentCgroup.trimmingSlashes
        try await BlockingWork.run { () throws(BDockerError) in
            let proc = "/proc/\(pid)"
            guard let status = try? String(contentsOfFile: proc + "/status", encoding: .utf8),
                  let membership = try? String(contentsOfFile: proc + "/cgroup", encoding: .utf8) else {
                throw .notFound("no process \(pid)")
            }
            guard let uids = ProcessFacts.uids(status), uids.real == job.uid, uids.effective == job.uid else {
                throw .forbidden("process \(pid) is not job \(job.jobKey)'s user's (uid \(job.uid))")
            }
            let current = ProcessFacts.cgroup(membership, controller: "cpuacct") ?? "/"
            if current == cgroup + "/COMMON" { return }
            // A container's process (or another job's) must stay where its usage is counted.
            let inJobs = parent != "/" && (current == parent || current.hasPrefix(parent + "/"))
            if inJobs || current == cgroup || current.hasPrefix(cgroup + "/") {
                throw .forbidden("process \(pid) is in \(current), a bdocker job's cgroup; only a process outside every job joins one")
            }
            try hierarchies.addProcessToCommon(cgroup, pid: pid)
        }
    }

    public func signalJob(_ job: JobRecord, _ signal: Int32) {
        guard let hierarchies, let cgroup = job.cgroup else { return }
        // Spare the batch system's own parent process (SGE's shepherd): it must live on to run
        // the epilog, which cleans up and reports.
        for pid in hierarchies.pids(cgroup) where pid != job.parentPID && pid > 1 {
            kill(pid_t(pid), signal)
        }
    }

    public func cleanEnvironment(_ job: JobRecord) async throws(BDockerError) {
        guard let hierarchies, let cgroup = job.cgroup else { return }
        try await hierarchies.removeJobTree(cgroup)
    }
}

extension String {
    var trimmingSlashes: String { trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
}
