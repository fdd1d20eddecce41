import BDAccounting
import BDClient
import BDCore
import BDStore
import Foundation
import GRDB
import Logging

/// `bdocker-bench accounting [--dir DIR] [--notifications N] [--export-records N] [--clients 1,16]`:
///
/// 1. Starts the real `bdockerd` (beside this binary) as an accounting daemon in DIR, with the
///    file appends and SQLite commits synced as in production, and sends N notifications
///    (`PUT /set_accounting`) from 1 client and then from 16 concurrent clients, each client
///    on a connection of its own, then batches of 250 from 16 clients. Each figure's limit is
///    measured in the same run: for one client, a no-op request (`GET /status`) to the same
///    daemon followed by an append+fdatasync on the same filesystem (what one durable request
///    waits for at least); for many, the no-op requests/s from as many clients.
///    Before the 1-client run, the same records go to an in-process `AccountingLedger` (no
///    HTTP), which splits that figure between the store and the request around it; the no-op
///    requests' daemon CPU is printed too.
/// 2. Fills a store with N generated records and times `bdocker-acct export -o FILE` (and
///    `qacct -f FILE -o` on the result, when gridengine-client is installed); 0 skips this.
///
/// DIR (default: a new directory under /var/tmp, removed afterwards) should be on the disk the
/// daemon would use: a tmpfs makes fsync free and the numbers meaningless.
enum AccountingBench {
    static func run(_ arguments: [String], results: inout [BenchResult]) async throws {
        var options = [String: String]()
        var args = arguments[...]
        while let flag = args.popFirst() {
            guard ["--dir", "--notifications", "--export-records", "--clients"].contains(flag), let value = args.popFirst() else {
                print("usage: bdocker-bench accounting [--dir DIR] [--notifications N=4000] [--export-records N=1000000] [--clients 1,16]")
                exit(2)
            }
            options[flag] = value
        }
        let notifications = options["--notifications"].flatMap(Int.init) ?? 4000
        let exportRecords = options["--export-records"].flatMap(Int.init) ?? 1_000_000
        let clientCounts = options["--clients"].map { $0.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 } } ?? [1, 16]
        let ownDir = options["--dir"] == nil
        let dir = try options["--dir"] ?? makeTempDir(in: "/var/tmp")
        defer { if ownDir { try? FileManager.default.removeItem(atPath: dir) } }
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        for tool in ["bdockerd", "bdocker-acct"] where !FileManager.default.isExecutableFile(atPath: bin + "/" + tool) {
            print("bdocker-bench accounting: \(bin)/\(tool) is missing; build it in the same configuration (swift build -c release)")
            exit(1)
        }

        print("accounting benchmark in \(dir) (\(filesystem(of: dir)))")
        let sync = try Limits.appendSyncPerSecond(dir: dir)
        print(String(format: "limit   append+fdatasync: %.0f/s", sync))
        if clientCounts.contains(1) {
            try await ledgerAlone(count: notifications, dir: dir + "/ledger")
        }
        for clients in clientCounts {
            let run = try await notify(clients: clients, count: notifications, dir: dir + "/notify-\(clients)", bin: bin)
            // One client waits for each reply, so it cannot beat a no-op request followed by one
            // sync; many clients share syncs (group commit), so theirs is the server's no-op rate.
            let limit = clients == 1 ? 1 / (1 / run.noop + 1 / sync) : run.noop
            results.append(BenchResult(name: "accounting notifications/s, \(clients) client\(clients == 1 ? "" : "s")", value: run.rate,
                                       unit: "/s", limit: limit,
                                       limitName: clients == 1 ? "a no-op request then an append+fdatasync, in sequence"
                                                               : "no-op requests/s from as many clients"))
        }
        // Batches from the most clients asked for (a lone client's batches say little).
        if let most = clientCounts.max(), most > 1 {
            let batched = try await notify(clients: most, count: notifications * 10, dir: dir + "/batch-\(most)", bin: bin, batchSize: 250)
            // No limit: one sync per 250 records is far above it; this path is CPU-bound, and
            // the printed daemon CPU a record is what says where it stands.
            results.append(BenchResult(name: "accounting records/s, \(most) clients, batches of 250", value: batched.rate, unit: "/s"))
        }
        if exportRecords > 0 {
            let exported = try await export(records: exportRecords, dir: dir + "/export", bin: bin)
            results.append(BenchResult(name: "bdocker-acct export, records/s (\(exportRecords) records)", value: exported, unit: "/s"))
        }
    }

    // MARK: - The ledger alone

    /// One caller submitting records one at a time to an `AccountingLedger` in this process:
    /// the store's and the file's share of a 1-client notification, without HTTP. Printed, not
    /// a figure of the table: it splits the 1-client figure between the store and the request.
    static func ledgerAlone(count: Int, dir: String) async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let database = try BDockerDatabase.open(path: dir + "/accounting.sqlite", role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: database, filePath: dir + "/bdocker_accounting", logger: Logger(label: "bench"))
        let lines = (0..<count).map { record(job: $0).line() }
        let clock = ContinuousClock()
        let cpuBefore = Bench.cpuSeconds()
        let start = clock.now
        for line in lines { _ = try await ledger.submit(try SGEAccountingRecord.parse(line)) }
        let seconds = (clock.now - start).seconds
        let cpu = Bench.cpuSeconds() - cpuBefore
        await ledger.close()
        print(String(format: "ledger   1 caller, in this process, no HTTP: %6d in %6.2f s = %7.0f records/s; %.0f µs a record, CPU %.0f µs a record",
                     count, seconds, Double(count) / seconds, seconds / Double(count) * 1e6, cpu / Double(count) * 1e6))
    }

    // MARK: - Notifications per second

    /// `rate`: records/s; `noop`: `GET /status` requests/s from as many clients, to the same
    /// daemon over the same connections, measured just before.
    static func notify(clients: Int, count: Int, dir: String, bin: String, batchSize: Int = 1) async throws -> (rate: Double, noop: Double) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let token = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
        _ = FileManager.default.createFile(atPath: dir + "/admin_token", contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let port = Int.random(in: 20_000...60_000)
        try """
            [resource]
            role = accounting
            [server]
            host = 127.0.0.1
            port = \(port)
            logging = WARNING
            database = \(dir)/accounting.sqlite
            [batch]
            controller = SGEAccountingController
            bdocker_accounting = \(dir)/bdocker_accounting
            [credentials]
            admin_token_file = \(dir)/admin_token
            """.write(toFile: dir + "/accounting.cfg", atomically: true, encoding: .utf8)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: bin + "/bdockerd")
        daemon.arguments = ["--config", dir + "/accounting.cfg"]
        try daemon.run()
        defer {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        // One connection per client: AsyncHTTPClient's default pool (8 a host) would make
        // "16 clients" 8.
        return try await withConcurrentClient(endpoint: "127.0.0.1:\(port)", connections: clients) { client in
            try await waitUntilServing(client)
            let clock = ContinuousClock()
            let noopCount = max(500, count / 4)
            let noopCPUBefore = cpuSeconds(pid: daemon.processIdentifier)
            let noopStart = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<clients {
                    group.addTask {
                        for _ in stride(from: worker, to: noopCount, by: clients) { _ = try await client.raw(.GET, "/status") }
                    }
                }
                try await group.waitForAll()
            }
            let noop = Double(noopCount) / (clock.now - noopStart).seconds
            let noopCPU = (cpuSeconds(pid: daemon.processIdentifier) - noopCPUBefore) / Double(noopCount)
            let lines = (0..<count).map { record(job: $0).line() }
            let cpuBefore = cpuSeconds(pid: daemon.processIdentifier)
            let start = clock.now
            let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
                for worker in 0..<clients {
                    group.addTask {
                        var mine: [Duration] = []
                        let indices = Array(stride(from: worker, to: count, by: clients))
                        for start in stride(from: 0, to: indices.count, by: batchSize) {
                            let sent = clock.now
                            if batchSize == 1 {
                                let _: AccountingReceipt = try await client.call(
                                    .PUT, "/set_accounting", body: SetAccountingRequest(adminToken: token, accounting: lines[indices[start]]))
                            } else {
                                let part = indices[start..<min(start + batchSize, indices.count)].map { lines[$0] }
                                let receipt: AccountingBatchReceipt = try await client.call(
                                    .PUT, "/set_accounting_batch", body: AccountingBatchRequest(adminToken: token, lines: part))
                                guard receipt.items.allSatisfy({ $0.statusCode == 200 }) else {
                                    throw BDockerError.internalFault("a batch line was refused: \(receipt.items.first { $0.statusCode != 200 }?.error ?? "")")
                                }
                            }
                            mine.append(clock.now - sent)
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: [Duration]()) { $0 += $1 }
            }.sorted()
            let seconds = (clock.now - start).seconds
            let daemonCPU = cpuSeconds(pid: daemon.processIdentifier) - cpuBefore
            let batches = try await DatabaseQueue(path: dir + "/accounting.sqlite").read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT appended_at) FROM records") ?? 0
            }
            print(String(format: "notify  %2d client%@%@: %6d in %6.2f s = %7.0f records/s; latency p50 %.1f ms, p99 %.1f ms; %d file syncs (%.1f records each); daemon CPU %.0f µs/record; no-op requests %.0f/s (daemon CPU %.0f µs each)",
                         clients, clients == 1 ? " " : "s", batchSize > 1 ? " (batches of \(batchSize))" : "", count, seconds, Double(count) / seconds,
                         latencies[latencies.count / 2].seconds * 1000, latencies[latencies.count * 99 / 100].seconds * 1000,
                         batches, Double(count) / Double(max(batches, 1)), daemonCPU / Double(count) * 1e6, noop, noopCPU * 1e6))
            return (Double(count) / seconds, noop)
        }
    }

    // MARK: - Export

    @discardableResult
    static func export(records: Int, dir: String, bin: String) async throws -> Double {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let database = try BDockerDatabase.open(path: dir + "/accounting.sqlite", role: "accounting", migrationsDir: nil)
        let clock = ContinuousClock()
        let filled = try await clock.measure {
            try await database.pool.write { db in
                let insert = try db.makeStatement(sql: """
                    INSERT INTO records (hostname, job_number, task_number, start_time, submission_time, end_time, qname,
                        owner, grp, job_name, account, project, department, granted_pe, slots, failed, exit_status,
                        ru_wallclock, ru_utime, ru_stime, ru_maxrss, cpu, mem, io, iow, maxvmem, line, received_at,
                        appended_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                let now = Date().timeIntervalSince1970
                for i in 0..<records {
                    let r = record(job: i)
                    try insert.execute(arguments: [
                        r.hostname, r.jobNumber, r.taskNumber, r.startTime, r.submissionTime, r.endTime, r.qname, r.owner,
                        r.group, r.jobName, r.account, r.project, r.department, r.grantedPE, r.slots, r.failed, r.exitStatus,
                        r.ruWallclock, r.ruUtime, r.ruStime, r.ruMaxrss, r.cpu, r.mem, r.io, r.iow, r.maxvmem, r.line(), now, now,
                    ])
                }
            }
        }
        print(String(format: "store   %d generated records in %.1f s", records, filled.seconds))

        let file = dir + "/export.accounting"
        let exported = try clock.measure {
            try run(bin + "/bdocker-acct", ["export", "--database", dir + "/accounting.sqlite", "-o", file])
        }
        let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        print(String(format: "export  %d records (%.0f MB) with bdocker-acct export in %.2f s = %.0f records/s",
                     records, Double(size) / 1e6, exported.seconds, Double(records) / exported.seconds))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/qacct") {
            let read = try clock.measure { try run("/usr/bin/qacct", ["-f", file, "-o"]) }
            print(String(format: "qacct   -f export -o over %d records in %.2f s (for scale)", records, read.seconds))
        }
        return Double(records) / exported.seconds
    }

    // MARK: - Helpers

    static func record(job: Int) -> SGEAccountingRecord {
        let start = 1_764_403_200 + job * 7
        var r = SGEAccountingRecord(qname: "all.q", hostname: "node\(job % 64)", group: "users", owner: "user\(job % 97)",
                                    jobName: "bench", jobNumber: 1_000_000 + job,
                                    submissionTime: start - 5, startTime: start, endTime: start + 300 + job % 600)
        r.ruUtime = Double(job % 1000) + 0.25
        r.cpu = r.ruUtime + 1.5
        r.mem = Double(job % 50) / 3
        r.maxvmem = Double(1 + job % 8) * 268_435_456
        return r
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BDockerError.internalFault("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(message)")
        }
    }

    /// The filesystem type as `stat -f` names it ("ext2/ext3", "tmpfs", ...).
    static func filesystem(of path: String) -> String {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        process.arguments = ["-f", "-c", "%T", path]
        process.standardOutput = output
        guard (try? process.run()) != nil else { return "unknown filesystem" }
        let type = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        return type == "tmpfs" ? "tmpfs: fsync is free, the numbers are optimistic" : "filesystem \(type)"
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
