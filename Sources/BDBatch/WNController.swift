import BDConfig
import BDCore
import BDStore
import Foundation
import Logging

/// What a batch system tells bdocker about a job when it is configured.
public struct JobDetails: Sendable, Equatable {
    public var queue: String?
    public var host: String?
    public var jobName: String?
    public var account: String?
    public var submissionTime: Double?
    public var maxCPUSeconds: Double?
    public var maxMemBytes: Int64?
    public var terminateMethod: String?
    /// The process whose descendants are the job (put into COMMON); nil when the batch system
    /// moves the job's processes itself (Slurm's TaskProlog).
    public var parentPID: Int?

    public init() {}
}

/// The working-node seam of the seed's design: a batch system's controller. The chain is
/// `WNController` (this protocol) → `CgroupsWNController` (the cgroup-based behaviour, shared) →
/// a batch system's controller such as `SGEWNController`. A new batch system is one new type
/// conforming to `CgroupsWNController` (or `WNController`) plus one line in `BatchRegistry`.
public protocol WNController: Sendable {
    /// The name `[batch] controller` uses, and older names it answers to.
    static var names: [String] { get }
    init(settings: Settings, logger: Logger) throws(BDockerError)

    /// conf_environment: reads what the batch system knows and prepares the job's environment.
    /// Fills the job row's batch fields (queue, limits, cgroup, …) before it is stored. Async so
    /// that file work can leave the cooperative pool.
    func configureEnvironment(_ job: inout JobRecord) async throws(BDockerError)

    /// The cgroup containers of the job run under (Docker's CgroupParent), or nil.
    func cgroupParent(of job: JobRecord) -> String?

    /// One reading of the job's usage, or nil when there is nothing to read (no cgroups, gone).
    func sample(_ job: JobRecord) -> CgroupReading?

    /// The same by the job's cgroup path alone: the monitor's per-tick path, which reads only
    /// the columns it needs rather than whole job rows.
    func sample(cgroup: String?) -> CgroupReading?

    /// The job's CPU time split into user and system (`cpuacct.stat`), for the record's
    /// ru_utime and ru_stime; read once, at clean. Nil where there is nothing to read.
    func cpuTimes(_ job: JobRecord) -> CPUTimes?

    /// Moves a process of the job's user into the job's COMMON cgroup, for batch systems that
    /// start the job's processes after configure (Slurm's TaskProlog calls `bdocker join`).
    /// Refused for a process of another user or one already in a bdocker job tree (a
    /// container's: moved into COMMON its usage would leave the containers' account).
    func join(_ job: JobRecord, pid: Int) async throws(BDockerError)

    /// Sends the job's processes the signal (all but the batch system's own parent process).
    func signalJob(_ job: JobRecord, _ signal: Int32)

    /// clean_environment: removes what configure made. Containers are already gone.
    func cleanEnvironment(_ job: JobRecord) async throws(BDockerError)
}

/// Working-node controllers by `[batch] controller` name. A new batch system: one line here.
public enum BatchRegistry {
    static let working: [any WNController.Type] = [SGEWNController.self, SlurmWNController.self]

    public static var names: [String] { working.flatMap { $0.names } }

    public static func make(settings: Settings, logger: Logger) throws -> any WNController {
        guard let type = working.first(where: { $0.names.contains(settings.batch.controller) }) else {
            throw settings.error("batch", "controller", "'\(settings.batch.controller)' is not a working-node controller; known: "
                                 + names.joined(separator: ", "))
        }
        return try type.init(settings: settings, logger: logger)
    }
}
