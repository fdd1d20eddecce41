import BDBatch
import BDConfig
import BDCore
import BDMetrics
import BDStore
import Foundation
import GRDB
import Logging

/// The one supervisor of every live job on the node. Each tick it reads all live jobs' cgroups,
/// writes every sample of the tick in one transaction, then enforces quotas. It keeps nothing
/// in memory between ticks: after a restart (even kill -9) it simply carries on from SQLite.
public struct JobMonitor: Sendable {
    public let pool: DatabasePool
    public let controller: any WNController
    public let interval: Duration
    public let logger: Logger
    /// Stops a job's containers when it is killed (the Docker side lives in another module).
    public let stopContainers: @Sendable (Int64) async -> Void
    /// Tick durations and kills by reason.
    public let metrics: NodeMetrics

    public init(pool: DatabasePool, controller: any WNController, interval: Duration, logger: Logger,
                metrics: NodeMetrics = .disabled, stopContainers: @escaping @Sendable (Int64) async -> Void) {
        self.pool = pool
        self.metrics = metrics
        self.controller = controller
        self.interval = interval
        self.logger = logger
        self.stopContainers = stopContainers
    }

    /// Ticks until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await tick()
            } catch is CancellationError {
                break  // shutting down: not a failure
            } catch {
                if Task.isCancelled { break }
                logger.error("monitor tick failed: \(error)")
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// What one tick did, for tests and logs.
    public struct TickReport: Sendable, Equatable {
        public var sampled: Int = 0
        public var vanished: [String] = []
        public var killed: [String] = []
    }

    /// What a tick needs of a live job, read from the row by column (no Codable decoding of
    /// whole job rows on the tick path).
    struct MonitoredJob: Sendable {
        var id: Int64
        var jobKey: String
        var cgroup: String?
        var maxCPUSeconds: Double?
        var maxMemBytes: Int64?

        static let columns = [JobRecord.Columns.id, JobRecord.Columns.jobKey, JobRecord.Columns.cgroup,
                              JobRecord.Columns.maxCPUSeconds, JobRecord.Columns.maxMemBytes]

        init(row: Row) {
            id = row[0]
            jobKey = row[1]
            cgroup = row[2]
            maxCPUSeconds = row[3]
            maxMemBytes = row[4]
        }
    }

    @discardableResult
    public func tick(now: Double = Date().timeIntervalSince1970) async throws -> TickReport {
        let started = ContinuousClock.now
        defer { metrics.monitorTickSeconds.record(duration: ContinuousClock.now - started) }
        let jobs = try await pool.read { db in
            try Row.fetchAll(db, JobRecord.monitored().select(MonitoredJob.columns)).map(MonitoredJob.init(row:))
        }
        var report = TickReport()
        // The reads are file I/O: on the batch module's threads, not the cooperative pool.
        let controller = self.controller
        let (readings, vanished) = try await BlockingWork.run { () throws(BDockerError) in
            var sampled: [(MonitoredJob, CgroupReading)] = []
            var gone: [MonitoredJob] = []
            sampled.reserveCapacity(jobs.count)
            for job in jobs {
                if let reading = controller.sample(cgroup: job.cgroup) { sampled.append((job, reading)) } else { gone.append(job) }
            }
            return (sampled, gone)
        }
        try await pool.write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT INTO samples (job_id, taken_at, cpu_ns_tree, cpu_ns_common, mem_bytes_tree, mem_bytes_common, max_mem_bytes_tree)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for (job, r) in readings {
                try insert.execute(arguments: [job.id, now, r.cpuNanosTree, r.cpuNanosCommon, r.memBytesTree, r.memBytesCommon,
                                               r.maxMemBytesTree])
            }
            try JobRecord.filter(keys: vanished.map(\.id))
                .updateAll(db, JobRecord.Columns.monitorState.set(to: JobRecord.MonitorState.vanished))
        }
        report.sampled = readings.count
        report.vanished = vanished.map(\.jobKey)
        for job in vanished { logger.warning("job \(job.jobKey): its cgroup \(job.cgroup ?? "-") vanished; no longer monitored") }
        for (job, reading) in readings {
            if let breach = Self.quotaExceeded(cpuLimit: job.maxCPUSeconds, memoryLimit: job.maxMemBytes, reading) {
                // A kill is rare: only now the whole row (terminate method, parent pid).
                guard let full = try await pool.read({ db in try JobRecord.fetchOne(db, key: job.id) }) else { continue }
                try await kill(full, reason: breach.message)
                metrics.jobKilled(breach.kind)
                report.killed.append(job.jobKey)
            }
        }
        return report
    }

    /// A quota the job went past: which kind (a metric label) and the words for the log and
    /// the job's record.
    struct Breach: Equatable {
        var kind: NodeMetrics.KillReason
        var message: String
    }

    /// Which quota the job is over, or nil.
    static func quotaExceeded(cpuLimit: Double?, memoryLimit: Int64?, _ r: CgroupReading) -> Breach? {
        if let limit = cpuLimit {
            let used = Double(r.cpuNanosTree) / 1e9
            if used >= limit { return Breach(kind: .cpu, message: String(format: "h_cpu exceeded: %.1f s used, limit %.1f s", used, limit)) }
        }
        if let limit = memoryLimit {
            let used = max(r.maxMemBytesTree, r.memBytesTree)
            if used >= limit { return Breach(kind: .memory, message: "memory limit exceeded: \(used) bytes used, limit \(limit) bytes") }
        }
        return nil
    }

    /// Records why, stops the containers, and signals the job's processes.
    func kill(_ job: JobRecord, reason: String) async throws {
        let signal = JobLimits.signal(job.terminateMethod)
        _ = try await pool.write { db in
            // SGE's failed 37: a limit was enforced; exit status 128 + signal.
            try JobRecord.filter(key: job.id!).updateAll(db,
                JobRecord.Columns.monitorState.set(to: JobRecord.MonitorState.killed),
                JobRecord.Columns.failed.set(to: 37),
                JobRecord.Columns.exitStatus.set(to: 128 + Int(signal)),
                JobRecord.Columns.killReason.set(to: reason))
        }
        logger.notice("job \(job.jobKey): \(reason); sending signal \(signal) to the job and stopping its containers")
        await stopContainers(job.id!)
        controller.signalJob(job, signal)
    }
}
