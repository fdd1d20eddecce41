import AsyncHTTPClient
import BDAPI
import BDAccounting
import BDBatch
import BDClient
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import NIOCore
import Testing

/// The accounting daemon over real HTTP: validation, idempotence, and exactly-once delivery to
/// the accounting file, in process and as the real bdockerd killed with SIGKILL.
@Suite("Accounting daemon")
struct AccountingDaemonTests {
    let files = TempDir("bdocker-acctd")
    let config: TestConfig
    var accountingFile: String { files.file("bdocker_accounting") }

    init() throws {
        config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("bdocker_accounting"))",
        ])
    }

    func withDaemon(_ body: (RunningDaemon, BDockerDatabase) async throws -> Void) async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router())
        do {
            try await body(server, daemon.database)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// PUTs a raw body (so malformed JSON can be sent too); the status and the envelope's results.
    func put(_ server: RunningDaemon, _ path: String, _ body: String) async throws -> (status: Int, results: String) {
        var request = HTTPClientRequest(url: "http://\(server.endpoint)\(path)")
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["status_code"] as? Int == Int(response.status.code))
        let results = object["results"]
        return (Int(response.status.code), (results as? String) ?? "\(results ?? "")")
    }

    static func json(_ text: String) -> String {
        String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
    }

    func setAccounting(_ line: String) -> String {
        "{\"admin_token\": \(Self.json(config.adminToken)), \"accounting\": \(Self.json(line))}"
    }

    func storedCount(_ database: BDockerDatabase) throws -> Int {
        try database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM records") ?? -1 }
    }

    /// The file's lines once it has caught up with the store: a reply comes when the record is
    /// committed, and its line follows.
    func settledFileLines(_ database: BDockerDatabase) async throws -> [String] {
        let stored = try storedCount(database)
        _ = try await eventually { (try? fileLines().count) ?? -1 >= stored }
        return try fileLines()
    }

    func fileLines() throws -> [String] {
        let text = try String(contentsOfFile: accountingFile, encoding: .utf8)
        #expect(text.hasPrefix(SGEAccountingRecord.fileHeader))
        return text.dropFirst(SGEAccountingRecord.fileHeader.count).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init)
    }

    @Test func invalidRecordsAre400AndNothingIsStored() async throws {
        let good = SampleAccounting.record(job: 31).line()
        var withColon = SampleAccounting.record(job: 31)
        withColon.owner = "ann:root"
        var fields = good.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        fields[36] = "NaN"
        let nan = fields.joined(separator: ":")
        fields[36] = "1.0"
        try await withDaemon { server, database in
            let token = Self.json(config.adminToken)
            let bodies = [
                setAccounting("A\nB"),
                setAccounting("None"),
                setAccounting("{'x': 1}"),
                setAccounting(good + "\n" + good),  // the original wrote two records
                setAccounting(good + "\n"),
                setAccounting(good + "\r"),
                setAccounting(good + "\u{0}"),
                setAccounting(fields.dropLast().joined(separator: ":")),  // 44 fields
                setAccounting(withColon.line()),  // 46 fields
                setAccounting(nan),
                setAccounting(""),
                "{\"admin_token\": \(token), \"accounting\": None}",
                "{\"admin_token\": \(token), \"accounting\": {\"x\": 1}}",
                "{\"admin_token\": \(token), \"accounting\": null}",
                "{\"admin_token\": \(token)}",
                "",
                "[]",
            ]
            for body in bodies {
                let (status, results) = try await put(server, "/set_accounting", body)
                #expect(status == 400, "\(body.debugDescription) → \(status) \(results)")
                #expect(!results.isEmpty)
            }
            // The structured form: a ':' in a text field, a negative or missing number, an unknown field.
            let record = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(withColon)) as? [String: Any])
            var variants: [[String: Any]] = [record]
            var negative = record
            negative["owner"] = "ann"
            negative["cpu"] = -5
            variants.append(negative)
            var missing = negative
            missing["cpu"] = nil
            variants.append(missing)
            var unknown = negative
            unknown["cpu"] = 1
            unknown["x"] = 1
            variants.append(unknown)
            for variant in variants {
                let body = "{\"admin_token\": \(token), \"record\": "
                    + String(decoding: try JSONSerialization.data(withJSONObject: variant), as: UTF8.self) + "}"
                let (status, results) = try await put(server, "/accounting", body)
                #expect(status == 400, "\(results)")
            }
            let (colonStatus, colonReason) = try await put(server, "/accounting", "{\"admin_token\": \(token), \"record\": "
                + String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self) + "}")
            #expect(colonStatus == 400 && colonReason.contains("field 4 (owner)") && colonReason.contains("':'"))
            #expect(try storedCount(database) == 0)
            // The file was begun (at start) and holds only the header.
            #expect(try fileLines().isEmpty)
        }
    }

    @Test func theAdminTokenIsRequired() async throws {
        try await withDaemon { server, database throws in
            let line = Self.json(SampleAccounting.record(job: 32).line())
            #expect(try await put(server, "/set_accounting", "{\"admin_token\": \"nope\", \"accounting\": \(line)}").status == 403)
            #expect(try await put(server, "/set_accounting", "{\"admin_token\": \"\", \"accounting\": \(line)}").status == 401)
            #expect(try storedCount(database) == 0)
        }
    }

    @Test func theSameRecordTwiceIsStoredOnceAndAcknowledgedTwice() async throws {
        try await withDaemon { server, database in
            let client = DaemonClient(endpoint: server.endpoint)
            let record = SampleAccounting.record(job: 33, task: 2)
            let first: AccountingReceipt = try await client.call(.PUT, "/set_accounting",
                                                                 body: SetAccountingRequest(adminToken: config.adminToken, accounting: record.line()))
            #expect(first.new)
            #expect(first.record.contains("33.2") && first.record.contains("node1"))
            // The same record again, in the structured form: the same store.
            let second: AccountingReceipt = try await client.call(.PUT, "/accounting",
                                                                  body: AccountingRecordRequest(adminToken: config.adminToken, record: record))
            #expect(!second.new)
            #expect(try storedCount(database) == 1)
            #expect(try await settledFileLines(database) == [record.line()])

            // A different record under the same key is a conflict and changes nothing.
            let (status, reason) = try await put(server, "/set_accounting", setAccounting(SampleAccounting.record(job: 33, task: 2, variant: 1).line()))
            #expect(status == 409 && reason.contains("write-once"))
            #expect(try await settledFileLines(database) == [record.line()])
            // Another task, start time or host is another record.
            for other in [SampleAccounting.record(job: 33, task: 3), SampleAccounting.record(job: 33, task: 2, start: 1_764_403_201),
                          SampleAccounting.record(job: 33, task: 2, host: "node2")] {
                let receipt: AccountingReceipt = try await client.call(.PUT, "/accounting",
                                                                       body: AccountingRecordRequest(adminToken: config.adminToken, record: other))
                #expect(receipt.new)
            }
            #expect(try await settledFileLines(database).count == 4)
        }
    }

    @Test func concurrentNotificationsOverHTTPAreEachInTheFileOnce() async throws {
        try await withDaemon { server, database in
            let records = (1...200).map { SampleAccounting.record(job: 1000 + $0, owner: "user\($0 % 5)") }
            let token = config.adminToken
            try await withConcurrentClient(endpoint: server.endpoint) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<16 {
                        group.addTask {
                            for r in records.indices where r % 16 == worker {
                                let _: AccountingReceipt = try await client.call(
                                    .PUT, "/set_accounting", body: SetAccountingRequest(adminToken: token, accounting: records[r].line()))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(try storedCount(database) == 200)
            let lines = try await settledFileLines(database)
            #expect(lines.count == 200)
            #expect(Set(lines) == Set(records.map { $0.line() }))
        }
    }

    /// The real daemon killed with SIGKILL, again and again, while 16 clients send 1,000
    /// records — one per request, or in batches of 25 as the outbox sends them — and resend
    /// whatever was not acknowledged: afterwards every record is in the store and in the file
    /// exactly once.
    /// The two forms one after the other: each picks a free port and hands it to its daemon,
    /// and two at once could be handed the same one.
    @Test(.timeLimit(.minutes(5)), .serialized, arguments: [1, 25])
    func killedRepeatedlyDuringALoadEveryRecordEndsUpOnce(batchSize: Int) async throws {
        let port = try Self.freePort()
        let settingsText = try String(contentsOfFile: config.configPath, encoding: .utf8)
            .replacingOccurrences(of: "port = 5001", with: "port = \(port)")
        let configPath = files.write("killed.cfg", settingsText)
        let daemon = KillableDaemon(binary: Repo.binDir + "/bdockerd", config: configPath, log: files.file("daemon.log"), port: port)
        try await daemon.start()

        let records = (1...1000).map { SampleAccounting.record(job: 5000 + $0, host: "node\($0 % 8)", owner: "user\($0 % 7)") }
        let client = DaemonClient(endpoint: "127.0.0.1:\(port)", timeoutSeconds: 30)
        let token = config.adminToken
        let acknowledged = Counter()
        let clients = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        let mine = records.indices.filter { $0 % 16 == worker }.map { records[$0].line() }
                        for start in stride(from: 0, to: mine.count, by: batchSize) {
                            let lines = Array(mine[start..<min(start + batchSize, mine.count)])
                            // Resend until acknowledged, as the working node's sender does.
                            while true {
                                do {
                                    if batchSize == 1 {
                                        let _: AccountingReceipt = try await client.call(
                                            .PUT, "/set_accounting", body: SetAccountingRequest(adminToken: token, accounting: lines[0]))
                                    } else {
                                        let receipt: AccountingBatchReceipt = try await client.call(
                                            .PUT, "/set_accounting_batch", body: AccountingBatchRequest(adminToken: token, lines: lines))
                                        guard receipt.items.allSatisfy({ $0.statusCode == 200 }) else { throw BDockerError.unavailable("retry") }
                                    }
                                    for _ in lines { acknowledged.add() }
                                    break
                                } catch {
                                    try await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        var kills = 0
        let clock = ContinuousClock(), deadline = clock.now + .seconds(120)
        for threshold in [150, 400, 650, 900] {
            while acknowledged.value < threshold {
                // Progress, not speed: a load that stops moving fails here with what it reached.
                guard clock.now < deadline else {
                    clients.cancel()
                    try await daemon.stop()
                    Issue.record("the load stopped at \(acknowledged.value) acknowledged records; log: \((try? String(contentsOfFile: files.file("daemon.log"), encoding: .utf8).suffix(2000)) ?? "")")
                    return
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            try await daemon.kill()
            kills += 1
            try await daemon.start()
        }
        try await clients.value
        try await daemon.stop()
        #expect(kills == 4)
        #expect(acknowledged.value == 1000)

        let database = try BDockerDatabase.open(path: config.settings.server.database, role: "accounting", migrationsDir: nil)
        let lines = try await settledFileLines(database)
        #expect(lines.count == 1000, "every record once in the file")
        #expect(Set(lines) == Set(records.map { $0.line() }))
        #expect(try storedCount(database) == 1000)
        let notInFile = try await database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM not_in_file") }
        #expect(notInFile == 0)
    }

    /// A batch: each line its own result, in order; the good ones stored and in the file once,
    /// with one append for the whole batch; sent again, nothing new.
    @Test func aBatchStoresEachGoodLineOnceWithOneAppend() async throws {
        try await withDaemon { server, database in
            let client = DaemonClient(endpoint: server.endpoint)
            let existing = SampleAccounting.record(job: 90)
            let _: AccountingReceipt = try await client.call(
                .PUT, "/set_accounting", body: SetAccountingRequest(adminToken: config.adminToken, accounting: existing.line()))
            var conflicting = existing
            conflicting.cpu += 1
            let good = (1...200).map { SampleAccounting.record(job: 100 + $0, host: "node\($0 % 4)").line() }
            let lines = good[..<100] + ["not an accounting line", existing.line(), conflicting.line()] + good[100...]
            let request = AccountingBatchRequest(adminToken: config.adminToken, lines: Array(lines))
            let receipt: AccountingBatchReceipt = try await client.call(.PUT, "/set_accounting_batch", body: request)
            #expect(receipt.items.count == 203)
            #expect(receipt.items.filter { $0.statusCode == 200 && $0.new == true }.count == 200)
            #expect(receipt.items[100].statusCode == 400)
            #expect(receipt.items[101] == AccountingBatchReceipt.Item(statusCode: 200, new: false, record: existing.key.description))
            #expect(receipt.items[102].statusCode == 409)

            #expect(try await settledFileLines(database) == [existing.line()] + good)
            #expect(try storedCount(database) == 201)
            // One append (and sync) for the batch: its 200 records share one appended_at.
            let appends = try await database.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT appended_at) FROM records WHERE job_number > 100")
            }
            #expect(appends == 1)

            let again: AccountingBatchReceipt = try await client.call(.PUT, "/set_accounting_batch", body: request)
            #expect(again.items.filter { $0.new == true }.isEmpty)
            #expect(try await settledFileLines(database).count == 201)
        }
    }

    @Test func aBatchNeedsTheAdminTokenAndAtMostItsLimitOfLines() async throws {
        try await withDaemon { server, database in
            let client = DaemonClient(endpoint: server.endpoint)
            let line = SampleAccounting.record(job: 1).line()
            let wrong = try await client.raw(.PUT, "/set_accounting_batch", body: AccountingBatchRequest(adminToken: "nope", lines: [line]))
            #expect(wrong.0 == 403)
            let tooMany = Array(repeating: line, count: AccountingBatchRequest.maxLines + 1)
            let big = try await client.raw(.PUT, "/set_accounting_batch",
                                           body: AccountingBatchRequest(adminToken: config.adminToken, lines: tooMany))
            #expect(big.0 == 400)
            #expect(try storedCount(database) == 0)
        }
    }

    /// The working node's sender with 50 records due: one batch request, every record
    /// delivered, the accounting daemon appends them with one write and one sync.
    @Test func theOutboxSendsSeveralDueRecordsAsOneBatch() async throws {
        try await withDaemon { server, database in
            let node = try BDockerDatabase.open(path: files.file("working.sqlite"), role: "working", migrationsDir: nil)
            let records = (1...50).map { SampleAccounting.record(job: 7000 + $0) }
            try await node.pool.write { db in
                for record in records {
                    var job = JobRecord(batchJobID: "\(record.jobNumber)", taskID: nil, user: "ann", uid: 1000, gid: 1000,
                                        home: "/h", spoolDir: nil)
                    job.state = .cleaned
                    try job.insert(db)
                    var row = OutboxRecord(jobID: job.id!, record: "{}", line: record.line(), createdAt: 0)
                    row.nextTryAt = 0
                    try row.insert(db)
                }
            }
            let sender = OutboxSender(pool: node.pool, endpoint: server.endpoint, adminToken: config.adminToken,
                                      timeoutSeconds: 30, logger: Logger(label: "test"))
            try await sender.deliverDue()
            let summary = try await sender.summary()
            #expect(summary.delivered == 50 && summary.pending == 0 && summary.rejected == 0)
            #expect(try await settledFileLines(database) == records.map { $0.line() })
            let appends = try await database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT appended_at) FROM records") }
            #expect(appends == 1)
        }
    }

    static func freePort() throws -> Int {
        let socket = try loopbackSocket(listening: false)
        close(socket.fd)
        return socket.port
    }
}

/// A count shared by tasks.
final class Counter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// The real bdockerd as a child process that can be killed and started again.
final class KillableDaemon: @unchecked Sendable {
    // @unchecked: used from one test task at a time.
    let binary: String
    let config: String
    let log: String
    let port: Int
    private var process: Process?

    init(binary: String, config: String, log: String, port: Int) {
        self.binary = binary
        self.config = config
        self.log = log
        self.port = port
    }

    /// Starts it and waits until it answers `/status`.
    func start() async throws {
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try output.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--config", config]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        self.process = process
        let client = DaemonClient(endpoint: "127.0.0.1:\(port)", timeoutSeconds: 5)
        for _ in 0..<500 {
            // Only our own daemon counts: one that exited (its port taken) must not be mistaken
            // for whatever else answers on that port.
            guard process.isRunning else { break }
            if (try? await client.raw(.GET, "/status").0) == 200, process.isRunning { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BDockerError.unavailable("bdockerd did not start; log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func kill() async throws {
        try await signal(SIGKILL)
    }

    func stop() async throws {
        try await signal(SIGTERM)
    }

    private func signal(_ signal: Int32) async throws {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, signal)
        while process.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        self.process = nil
    }
}
