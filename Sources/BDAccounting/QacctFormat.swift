import BDCore
import Foundation

/// Accounting values as Grid Engine 8.1.9's `qacct` shows them, so `bdocker-acct job` and
/// `qacct -j` on the exported file read alike, field for field.
public enum QacctFormat {
    /// The rule `qacct -j` prints above each record.
    public static let rule = String(repeating: "=", count: 62)

    /// One record as `qacct -j` shows it: the rule, then `name value` lines in qacct's order.
    public static func job(_ record: SGEAccountingRecord) -> String {
        ([rule] + fields(record).map { name, value in
            // qacct pads names to 13 columns (and values to 20, which only adds trailing blanks).
            name.padding(toLength: 13, withPad: " ", startingAt: 0) + value
        }).joined(separator: "\n") + "\n"
    }

    /// The fields `qacct -j` prints, with its names, order and formats. As there, `ru_maxrss`
    /// and `ru_inblock` are read as whole numbers and `ru_maxrss` is scaled as bytes (Grid
    /// Engine records kilobytes there: qacct's quirk, kept so the two views agree; `--json`
    /// has the raw number).
    public static func fields(_ r: SGEAccountingRecord) -> [(String, String)] {
        let gib = 1_073_741_824.0
        return [
            ("qname", r.qname), ("hostname", r.hostname), ("group", r.group), ("owner", r.owner), ("project", r.project),
            ("department", r.department), ("jobname", r.jobName), ("jobnumber", String(r.jobNumber)),
            ("taskid", r.taskNumber == 0 ? "undefined" : String(r.taskNumber)), ("account", r.account),
            ("priority", String(r.priority)), ("qsub_time", ctime(r.submissionTime)),
            ("start_time", r.startTime == 0 ? "-/-" : ctime(r.startTime)), ("end_time", r.endTime == 0 ? "-/-" : ctime(r.endTime)),
            ("granted_pe", r.grantedPE), ("slots", String(r.slots)), ("failed", failed(r.failed)),
            ("exit_status", exitStatus(r.exitStatus)), ("ru_wallclock", "\(r.ruWallclock)s"),
            ("ru_utime", String(format: "%.3fs", r.ruUtime)), ("ru_stime", String(format: "%.3fs", r.ruStime)),
            ("ru_maxrss", memory(r.ruMaxrss.rounded(.down))), ("ru_ixrss", memory(Double(r.ruIxrss))),
            ("ru_ismrss", memory(Double(r.ruIsmrss))), ("ru_idrss", memory(Double(r.ruIdrss))), ("ru_isrss", memory(Double(r.ruIsrss))),
            ("ru_minflt", String(r.ruMinflt)), ("ru_majflt", String(r.ruMajflt)), ("ru_nswap", String(r.ruNswap)),
            ("ru_inblock", String(format: "%.0f", r.ruInblock.rounded(.down))), ("ru_oublock", String(r.ruOublock)),
            ("ru_msgsnd", String(r.ruMsgsnd)), ("ru_msgrcv", String(r.ruMsgrcv)), ("ru_nsignals", String(r.ruNsignals)),
            ("ru_nvcsw", String(r.ruNvcsw)), ("ru_nivcsw", String(r.ruNivcsw)),
            ("cpu", String(format: "%.3fs", r.cpu)), ("mem", memory(r.mem * gib) + "s"), ("io", memory(r.io * gib)),
            ("iow", String(format: "%.3fs", r.iow)), ("maxvmem", memory(r.maxvmem)),
            ("arid", r.arid == 0 ? "undefined" : String(r.arid)),
            ("ar_sub_time", r.arSubmissionTime == 0 ? "undefined" : ctime(r.arSubmissionTime)), ("category", r.category),
        ]
    }

    /// Bytes with three decimals in the largest unit of 1024 that fits, up to TB: "2.000GB".
    public static func memory(_ bytes: Double) -> String {
        var value = bytes
        for unit in ["B", "KB", "MB", "GB"] {
            if abs(value) < 1024 { return String(format: "%.3f", value) + unit }
            value /= 1024
        }
        return String(format: "%.3fTB", value)
    }

    /// An epoch time as `ctime(3)` writes it in local time, without the newline:
    /// "Mon Dec  1 12:46:40 2025". Names are spelled here, not by the locale, as in the C locale.
    public static func ctime(_ epoch: Int) -> String {
        var seconds = time_t(epoch)
        var t = tm()
        guard localtime_r(&seconds, &t) != nil else { return String(epoch) }
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(days[Int(t.tm_wday)]) \(months[Int(t.tm_mon)]) "
            + String(format: "%2d %02d:%02d:%02d %d", t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_year + 1900)
    }

    /// `failed` with Grid Engine's reason: "100 : assumedly after job", or "0".
    static func failed(_ code: Int) -> String {
        guard code != 0 else { return "0" }
        return String(code).padding(toLength: max(3, String(code).count), withPad: " ", startingAt: 0) + " : "
            + (failureReasons[code] ?? "invalid execution state")
    }

    /// `exit_status`, with the signal's name when the job was killed by one (128 + signal).
    static func exitStatus(_ status: Int) -> String {
        guard status >= 128, status - 128 <= Int(Int32.max) else { return String(status) }
        let name = strsignal(Int32(status - 128)).map { String(cString: $0) } ?? "Unknown signal \(status - 128)"
        return String(status).padding(toLength: max(20, String(status).count), withPad: " ", startingAt: 0) + " (\(name))"
    }

    /// Grid Engine's execution states (`failed`), as qacct names them; others are "invalid
    /// execution state".
    static let failureReasons: [Int: String] = [
        1: "assumedly before job", 2: "on executing shepherd", 3: "before writing config", 4: "before writing pid",
        5: "on reading config file", 6: "setting processor set", 7: "before prolog", 8: "in prolog", 9: "before pestart",
        10: "in pestart", 11: "before job", 12: "before pestop", 13: "in pestop", 14: "before epilog", 15: "in epilog",
        16: "releasing processor set", 17: "through signal", 18: "shepherd returned error", 19: "before writing exit_status",
        20: "found unexpected error file", 21: "in recognizing job", 22: "removed manually", 23: "invalid execution state",
        24: "migrating", 25: "rescheduling", 26: "opening input/output file", 27: "searching requested shell",
        28: "changing into working directory", 29: "AFS setup", 30: "application error returned",
        31: "accessing sgepasswd file", 32: "entry is missing in sgepasswd file", 33: "wrong password",
        34: "communicating with Grid Engine Helper Service", 35: "before job in Grid Engine Helper Service",
        36: "checking configured daemons", 37: "qmaster enforced h_rt, h_cpu, or h_vmem limit",
        38: "adding supplementary group", 100: "assumedly after job",
    ]
}

/// qacct's time form for `-b` and `-e`: `[[CC]YY]MMDDhhmm[.SS]` in local time. Without CC a YY
/// below 70 is 20YY; without YY the year is the current one.
public enum QacctTime {
    /// Epoch seconds, or nil when `text` is not that form or names no real time (month 13,
    /// February 30, 24:00).
    public static func parse(_ text: String, now: Int = Int(Date().timeIntervalSince1970)) -> Int? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        func digits(_ s: Substring) -> [Int]? {
            s.utf8.allSatisfy({ (48...57).contains($0) }) ? s.utf8.map { Int($0) - 48 } : nil
        }
        guard let main = digits(parts[0]), [8, 10, 12].contains(main.count) else { return nil }
        var second = 0
        if parts.count == 2 {
            guard let s = digits(parts[1]), s.count == 2 else { return nil }
            second = s[0] * 10 + s[1]
        }
        func pair(_ i: Int) -> Int { main[i] * 10 + main[i + 1] }
        let rest = main.count - 8  // digits of the year before MMDDhhmm
        let year: Int
        switch rest {
        case 4: year = pair(0) * 100 + pair(2)
        case 2: year = pair(0) < 70 ? 2000 + pair(0) : 1900 + pair(0)
        default:
            var seconds = time_t(now)
            var t = tm()
            guard localtime_r(&seconds, &t) != nil else { return nil }
            year = Int(t.tm_year) + 1900
        }
        let (month, day, hour, minute) = (pair(rest), pair(rest + 2), pair(rest + 4), pair(rest + 6))
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
        var t = tm()
        t.tm_year = Int32(year - 1900)
        t.tm_mon = Int32(month - 1)
        t.tm_mday = Int32(day)
        t.tm_hour = Int32(hour)
        t.tm_min = Int32(minute)
        t.tm_sec = Int32(second)
        t.tm_isdst = -1
        let epoch = mktime(&t)
        // mktime normalizes February 30 into March; such a date is a typo, not a time.
        guard epoch != -1 || (year == 1969 && month == 12 && day == 31),
              t.tm_mon == Int32(month - 1), t.tm_mday == Int32(day) else { return nil }
        return Int(epoch)
    }
}
