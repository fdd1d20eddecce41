import BDBatch
import BDCore
import BDConfig
import BDStore
import BDWorkingNode
import Foundation
import GRDB
import Logging

/// Benchmarks that print numbers (not tests); tools/bench.sh runs them all.
///
///     bdocker-bench monitor [JOBS=1000] [TICKS=20] [--json FILE]
///     bdocker-bench node [--jobs 100,1000,10000] [--samples 200] [--bin DIR] [--dir DIR] [--json FILE]
///     bdocker-bench accounting [--dir DIR] [--notifications N] [--export-records N] [--clients 1,16] [--json FILE]
///     bdocker-bench fsync [DIR=/var/tmp] [--json FILE]
///
/// `monitor`: one monitor tick over JOBS live jobs on a fake cgroup tree in tmpfs (/dev/shm),
/// the SQLite database there too: CPU per tick, next to a pread pass over the same files.
/// `node`: see NodeBench; `accounting`: see AccountingBench. `fsync`: the append+fdatasync limit of a filesystem. With --json the
/// figures are also appended to FILE as JSON lines.
@main
struct Bench {
    static func main() async throws {
        var args = Array(CommandLine.arguments.dropFirst())
        var json: String?
        if let i = args.firstIndex(of: "--json"), i + 1 < args.count {
            json = args[i + 1]
            args.removeSubrange(i...(i + 1))
        }
        var results: [BenchResult] = []
        // As bdockerd does: the monitor's kept-open counter files and the pread limit need them.
        ProcessLimits.raiseDescriptorLimit()
        switch args.first {
        case "monitor":
            let jobs = args.dropFirst().first.flatMap(Int.init) ?? 1000
            let ticks = args.dropFirst(2).first.flatMap(Int.init) ?? 20
            try await monitor(jobs: jobs, ticks: ticks, results: &results)
        case "node":
            var options = NodeBench.Options()
            options.bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            var rest = args.dropFirst()[...]
            while let flag = rest.popFirst() {
                guard let value = rest.popFirst() else { usage() }
                switch flag {
                case "--jobs": options.sizes = value.split(separator: ",").compactMap { Int($0) }
                case "--samples": options.samples = Int(value) ?? options.samples
                case "--bin": options.bin = value
                case "--dir": options.dir = value
                case "--docker": options.docker = value
                default: usage()
                }
            }
            do {
                try await NodeBench.run(options, results: &results)
            } catch {
                print("bdocker-bench node: \((error as? BDockerError)?.message ?? "\(error)")")
                exit(1)
            }
        case "accounting":
            do {
                try await AccountingBench.run(Array(args.dropFirst()), results: &results)
            } catch {
                print("bdocker-bench accounting: \((error as? BDockerError)?.message ?? "\(error)")")
                exit(1)
            }
        case "fsync":
            let dir = args.dropFirst().first ?? "/var/tmp"
            results.append(BenchResult(name: "append+fdatasync in \(dir)", value: try Limits.appendSyncPerSecond(dir: dir), unit: "/s"))
        default:
            usage()
        }
        for r in results {
            let limit = r.limit.map { "   (limit " + String(format: "%.3g ", $0) + r.unit + ": " + (r.limitName ?? "") + String(format: ", ratio %.2f)", r.value / $0) } ?? ""
            print(r.name.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: " %10.3f ", r.value) + r.unit + limit)
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var text = ""
            for r in results { text += String(decoding: try encoder.encode(r), as: UTF8.self) + "\n" }
            if let handle = FileHandle(forWritingAtPath: json) {
                handle.seekToEndOfFile()
                handle.write(Data(text.utf8))
                try handle.close()
            } else {
                try text.write(toFile: json, atomically: true, encoding: .utf8)
            }
        }
    }

    static func usage() -> Never {
        print("usage: bdocker-bench monitor [JOBS] [TICKS] | node [--jobs 100,1000] [--samples N] [--bin DIR] [--dir DIR] [--docker URL] | accounting [--dir DIR] [--notifications N] [--export-records N] [--clients 1,16] | fsync [DIR]  [--json FILE]")
        exit(2)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func monitor(jobs: Int, ticks: Int, results: inout [BenchResult]) async throws {
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
        let controller = try SGEWNController(settings: settings, logger: Logger(label: "bench"))
        let monitor = JobMonitor(pool: db.pool, controller: controller, interval: .seconds(10), logger: Logger(label: "bench")) { _ in }
        _ = try await monitor.tick()  // warm up
        if let counters = controller.hierarchies?.counters {
            print("counter files kept open: \(counters.openCount) (capacity \(counters.capacity))")
        }
        var cpu: [Double] = [], wall: [Double] = []
        for _ in 0..<ticks {
            let c0 = cpuSeconds(), w0 = Date()
            let report = try await monitor.tick()
            precondition(report.sampled == jobs)
            cpu.append(cpuSeconds() - c0)
            wall.append(Date().timeIntervalSince(w0))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        var files: [String] = []
        for i in 0..<jobs {
            for sub in ["", "/COMMON"] {
                files.append("\(base)/cg/cpuacct/bdocker/\(i)\(sub)/cpuacct.usage")
                files.append("\(base)/cg/memory/bdocker/\(i)\(sub)/memory.usage_in_bytes")
            }
            files.append("\(base)/cg/memory/bdocker/\(i)/memory.max_usage_in_bytes")
        }
        let limit = Limits.preadPass(files: files)
        results.append(BenchResult(name: "monitor tick CPU, \(jobs) jobs", value: median(cpu) * 1000, unit: "ms",
                                   limit: limit * 1000, limitName: "pread of the same \(files.count) files"))
        results.append(BenchResult(name: "monitor tick wall, \(jobs) jobs", value: median(wall) * 1000, unit: "ms"))
    }
}
