import BDAccounting
import BDBatch
import BDConfig
import BDStore
import Foundation

/// Builds a job's SGE accounting record from its row and the usage measured by the monitor.
public enum AccountingRecordBuilder {
    public static func record(job: JobRecord, usage: JobUsage, cpuTimes: CPUTimes? = nil, end: Double,
                              settings: Settings.Batch) -> SGEAccountingRecord {
        let start = job.startTime ?? job.createdAt
        // Text fields may not hold SGE's separator or a control character, or be empty (qacct
        // would shift fields); see SGEAccountingRecord.validate(). Scalars, not Characters:
        // ":\u{301}" is one Character that is not ":" but still splits qacct's line.
        func text(_ s: String?, _ fallback: String) -> String {
            var scalars = String.UnicodeScalarView()
            for u in (s ?? "").unicodeScalars where (u.value >= 0x20 || u == "\t") && u.value != 0x7F {
                scalars.append(u == ":" ? "_" : u)
            }
            let v = String(scalars)
            return v.isEmpty ? fallback : v
        }
        // Numbers may come from a job's spool or an old row: none may trap here. Times and
        // durations go through JobLimits.wholeSeconds (nan/negative → 0, clamped to year 9999),
        // a submission time that is no usable time is replaced by the start, and ids that are not
        // non-negative whole numbers become 0 (a record field may not be negative).
        func nonNegative(_ s: String?) -> Int { s.flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil } ?? 0 }
        let group = gid_t(exactly: job.gid).flatMap { getgrgid($0) }.map { String(cString: $0.pointee.gr_name) } ?? "\(job.gid)"
        let submission = job.submissionTime.flatMap { JobLimits.timestamp($0) } ?? start
        var record = SGEAccountingRecord(
            qname: text(job.queue, "bdocker").replacingFirstHash, hostname: text(job.host, ProcessInfo.processInfo.hostName),
            group: text(group, "\(job.gid)"), owner: text(job.user, "\(job.uid)"), jobName: text(job.jobName, "bdocker"),
            jobNumber: nonNegative(job.batchJobID), account: text(job.account, "sge"), taskNumber: nonNegative(job.taskID),
            submissionTime: JobLimits.wholeSeconds(submission), startTime: JobLimits.wholeSeconds(start),
            endTime: JobLimits.wholeSeconds(end), failed: job.failed, exitStatus: job.exitStatus)
        record.ruWallclock = JobLimits.wholeSeconds(settings.includeWallclock ? (end - start).rounded() : settings.defaultRuWallclock)
        // cpu is measured in nanoseconds (cpuacct.usage); cpuacct.stat's coarser ticks only say
        // how it divides into user and system time, so ru_utime + ru_stime = cpu, as in SGE.
        let system = usage.cpu * (cpuTimes?.systemShare(onlyDocker: settings.onlyDockerAccounting) ?? 0)
        record.ruStime = system
        record.ruUtime = usage.cpu - system
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

private extension String {
    /// A qname starting with '#' would make the line a comment qacct skips.
    var replacingFirstHash: String { utf8.first == UInt8(ascii: "#") ? "_" + dropFirst() : self }
}
