import BDConfig
import BDStore
import Foundation

/// Builds a job's SGE accounting record from its row and the usage measured by the monitor.
public enum AccountingRecordBuilder {
    public static func record(job: JobRecord, usage: JobUsage, end: Double, settings: Settings.Batch) -> SGEAccountingRecord {
        let start = job.startTime ?? job.createdAt
        // Text fields may not hold SGE's separator or be empty (qacct would shift fields).
        func text(_ s: String?, _ fallback: String) -> String {
            let v = (s ?? "").replacingOccurrences(of: ":", with: "_").filter { $0 != "\n" && $0 != "\r" && $0 != "\0" }
            return v.isEmpty ? fallback : v
        }
        let group = getgrgid(gid_t(job.gid)).map { String(cString: $0.pointee.gr_name) } ?? "\(job.gid)"
        var record = SGEAccountingRecord(
            qname: text(job.queue, "bdocker"), hostname: text(job.host, ProcessInfo.processInfo.hostName),
            group: text(group, "\(job.gid)"), owner: text(job.user, "\(job.uid)"), jobName: text(job.jobName, "bdocker"),
            jobNumber: Int(job.batchJobID) ?? 0, account: text(job.account, "sge"), taskNumber: Int(job.taskID ?? "") ?? 0,
            submissionTime: Int(job.submissionTime ?? start), startTime: Int(start), endTime: Int(end),
            failed: job.failed, exitStatus: job.exitStatus)
        record.ruWallclock = settings.includeWallclock ? Int(max(0, end - start).rounded()) : Int(settings.defaultRuWallclock)
        record.ruUtime = usage.cpu
        record.cpu = usage.cpu
        record.mem = usage.mem
        record.maxvmem = usage.maxvmem
        return record
    }

    public static func json(_ record: SGEAccountingRecord) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(record), as: UTF8.self)
    }
}
