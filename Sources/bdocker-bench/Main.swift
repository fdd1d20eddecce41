import BDBatch
import BDConfig
import BDStore
import BDWorkingNode
import Foundation
import GRDB
import Logging

/// Benchmarks that print numbers (not tests). `bdocker-bench monitor [JOBS] [TICKS]`: one
/// monitor tick over JOBS live jobs on a fake cgroup tree in tmpfs (/dev/shm), with the
/// SQLite database there too; prints CPU time per tick and per job.
@main
struct Bench {
    static func main() async throws {
        let args = CommandLine.arguments.dropFirst()
        guard args.first == "monitor" else {
            print("usage: bdocker-bench monitor [JOBS=1000] [TICKS=20]")
            return
        }
        let jobs = args.dropFirst().first.flatMap(Int.init) ?? 1000
        let ticks = args.dropFirst(2).first.flatMap(Int.init) ?? 20
        try await monitor(jobs: jobs, ticks: ticks)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func monitor(jobs: Int, ticks: Int) async throws {
        let base = "/dev/shm/bdocker-bench-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        for controller in ["cpu", "cpuacct", "memory"] {
            try fm.createDirectory(atPath: "\(base)/cg/\(controller)", withIntermediateDirectories: true)
            _ = fm.createFile(atPath: "\(base)/cg/\(controller)/tasks", contents: Data())
        }
        _ = fm.createFile(atPath: "\(base)/cg/cpu/cpu.shares", contents: Data("1024\n".utf8))
        _ = fm.createFile(atPath: "\(base)/cg/cpuacct/cpuacct.usage", contents: Data("0\n".utf8))
        _ = fm.createFile(atPath: "\(base)/cg/memory/memory.usage_in_bytes", contents: Data("0\n".utf8))
        let db = try BDockerDatabase.open(path: "\(base)/w.sqlite", role: "working", migrationsDir: nil)
        try await db.pool.write { db in
            for i in 0..<jobs {
                var job = JobRecord(batchJobID: "\(i)", taskID: nil, user: "bench", uid: 5000, gid: 5000, home: "/tmp", spoolDir: nil)
                job.cgroup = "/bdocker/\(i)"
                job.monitorState = .live
                job.maxCPUSeconds = 1e9
                try job.insert(db)
            }
        }
        for i in 0..<jobs {
            for (controller, files) in [("cpuacct", ["cpuacct.usage"]), ("memory", ["memory.usage_in_bytes", "memory.max_usage_in_bytes"])] {
                for dir in ["\(base)/cg/\(controller)/bdocker/\(i)", "\(base)/cg/\(controller)/bdocker/\(i)/COMMON"] {
                    try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    for file in files { _ = fm.createFile(atPath: "\(dir)/\(file)", contents: Data("\(1_000_000 * i)\n".utf8)) }
                }
            }
        }
        var settings = try SettingsLoader.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("etc/configure_bdocker.cfg").path)
        settings.batch.cgroupsDir = "\(base)/cg"
        let monitor = JobMonitor(pool: db.pool, controller: try SGEWNController(settings: settings, logger: Logger(label: "bench")),
                                 interval: .seconds(10), logger: Logger(label: "bench")) { _ in }
        _ = try await monitor.tick()  // warm up
        var cpu: [Double] = [], wall: [Double] = []
        for _ in 0..<ticks {
            let c0 = cpuSeconds(), w0 = Date()
            let report = try await monitor.tick()
            precondition(report.sampled == jobs)
            cpu.append(cpuSeconds() - c0)
            wall.append(Date().timeIntervalSince(w0))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        print("monitor tick over \(jobs) jobs, \(ticks) ticks (fake cgroup tree and database in tmpfs):")
        print(String(format: "  CPU per tick:  median %.1f ms  (%.1f µs per job)", median(cpu) * 1000, median(cpu) * 1e6 / Double(jobs)))
        print(String(format: "  wall per tick: median %.1f ms", median(wall) * 1000))
    }
}
