import BDAPI
import BDAccounting
import BDBatch
import BDClient
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

/// The working node's records reaching the accounting daemon (a real bdockerd process) and
/// Grid Engine's own `qacct` reading the file it writes; over plain HTTP, over TLS with a CA made
/// in the test, and with per-node client certificates.
@Suite("Accounting delivery", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine, .qacct, .openssl))
struct DeliveryTests {
    /// How the node reaches the accounting daemon (docs/deploy.md's two TLS modes, and none).
    enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case plain
        /// The daemon's certificate, verified by the node against the test CA.
        case tls
        /// That, and the node's own certificate (CN = its host name), which the daemon requires.
        case perNode

        var testDescription: String { rawValue }
    }

    /// An accounting daemon process on its own port, database and accounting file.
    final class AccountingDaemon: @unchecked Sendable {
        // @unchecked: `process` is only touched by the one test that owns this.
        let config: TestConfig
        let port = Int.random(in: 20_000...60_000)
        let transport: Transport
        /// The test CA, for `.tls` and `.perNode`.
        let pki: TestPKI?
        var process: Process?
        var accountingFile: String { config.dir.file("bdocker_accounting") }
        var endpoint: String { "\(transport == .plain ? "http" : "https")://localhost:\(port)" }

        init(adminTokenFrom working: TestConfig? = nil, transport: Transport = .plain) async throws {
            self.transport = transport
            let pki = transport == .plain ? nil : try await TestPKI()
            self.pki = pki
            var replacing = ["port = 5001": "port = \(port)"]
            if let pki {
                replacing["# tls_certificate = /etc/bdocker/tls/accounting.pem"] = "tls_certificate = \(pki.serverCertificate)"
                replacing["# tls_key = /etc/bdocker/tls/accounting.key"] = "tls_key = \(pki.serverKey)"
            }
            if let pki, transport == .perNode {
                replacing["# tls_client_ca = /etc/bdocker/tls/ca.pem"] = "tls_client_ca = \(pki.caCertificate)"
            }
            config = try TestConfig(role: .accounting, replacing: replacing)
            let text = try String(contentsOfFile: config.configPath, encoding: .utf8)
                .replacingOccurrences(of: "bdocker_accounting = /var/log/bdocker/accounting",
                                      with: "bdocker_accounting = \(config.dir.file("bdocker_accounting"))")
            try text.write(toFile: config.configPath, atomically: true, encoding: .utf8)
            if let working {
                // One admin token for the cluster: the same file on both sides.
                try working.adminToken.write(toFile: config.dir.file("admin_token"), atomically: true, encoding: .utf8)
                chmod(config.dir.file("admin_token"), 0o600)
            }
        }

        func start() async throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Repo.binDir + "/bdockerd")
            p.arguments = ["--config", config.configPath]
            p.standardError = FileHandle.nullDevice
            try p.run()
            process = p
            let client = try await statusClient()
            for _ in 0..<100 {
                if (try? await client.call(.GET, "/status", as: StatusResult.self)) != nil { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw BDockerError.unavailable("accounting daemon did not start on \(port)")
        }

        /// A client that may ask for `/status`: over TLS one trusting the test CA (and in
        /// per-node mode holding a certificate of it).
        func statusClient() async throws -> DaemonClient {
            guard let pki else { return DaemonClient(endpoint: endpoint) }
            let probe = transport == .perNode ? try await pki.node("status-probe") : nil
            let tls = ClientTLS(caFile: pki.caCertificate, certificateFile: probe?.certificate, keyFile: probe?.key)
            return DaemonClient(endpoint: endpoint, http: try .failingFast(tls: tls))
        }

        /// The TLS lines of a working node's config that sends here as `host` (the name its
        /// certificate carries in per-node mode).
        func nodeConfigLines(host: String) async throws -> [String: String] {
            var lines = ["accounting_endpoint = http://127.0.0.1:5001": "accounting_endpoint = \(endpoint)"]
            guard let pki else { return lines }
            lines["# accounting_ca = /etc/bdocker/tls/ca.pem"] = "accounting_ca = \(pki.caCertificate)"
            if transport == .perNode {
                let node = try await pki.node(host)
                lines["# accounting_client_certificate = /etc/bdocker/tls/node.pem"] = "accounting_client_certificate = \(node.certificate)"
                lines["# accounting_client_key = /etc/bdocker/tls/node.key"] = "accounting_client_key = \(node.key)"
            }
            return lines
        }

        /// Each stored record's host and the node its certificate named (`sent_by`).
        func senders() throws -> [[String?]] {
            var configuration = Configuration()
            configuration.readonly = true
            let store = try DatabaseQueue(path: config.settings.server.database, configuration: configuration)
            return try store.read { db in try Row.fetchAll(db, sql: "SELECT hostname, sent_by FROM records ORDER BY id").map { [$0[0], $0[1]] } }
        }

        func stop(signal: Int32 = SIGTERM) {
            guard let p = process else { return }
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            process = nil
        }

        /// The file's record lines once every stored record is confirmed in it (the view
        /// `not_in_file` is empty): the daemon answers when a record is committed, and its line
        /// follows.
        func settledLines() async throws -> [String] {
            var configuration = Configuration()
            configuration.readonly = true
            let store = try DatabaseQueue(path: config.settings.server.database, configuration: configuration)
            let settled = try await eventually {
                try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM not_in_file") } == 0
            }
            #expect(settled, "the accounting file caught up with the store")
            return try lines()
        }

        func lines() throws -> [String] {
            try String(contentsOfFile: accountingFile, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        }

        deinit { stop() }
    }

    func workingNode(accountingEndpoint: String) throws -> (TestConfig, WorkingNode, String) {
        try workingNode(sendingTo: ["accounting_endpoint = http://127.0.0.1:5001": "accounting_endpoint = \(accountingEndpoint)"])
    }

    /// A working node whose config is the sample's with `sendingTo`'s lines replaced.
    func workingNode(sendingTo lines: [String: String]) throws -> (TestConfig, WorkingNode, String) {
        try #require(geteuid() == 0, "real cgroups need root")
        let env = TestEnvironment.load()
        let config = try TestConfig(replacing: lines.merging([
            "base_url = unix:///var/run/docker.sock": "base_url = \(env["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock")",
        ]) { a, _ in a })
        let node = try Daemon(settings: config.settings, logger: Logger(label: "test")).workingNode()
        return (config, node, env["BDOCKER_TEST_IMAGE"] ?? "127.0.0.1:5055/busybox:latest")
    }

    /// Runs a configured job's container that burns 2 s of CPU, then cleans the job.
    func runBurningJob(_ config: TestConfig, _ node: WorkingNode, image: String) async throws -> BatchIntegrationTests.FakeSGEJob {
        let user = try testUser()
        let job = try BatchIntegrationTests.FakeSGEJob(user: user)
        let token = try await node.configure(ConfigureRequest(adminToken: config.adminToken, userCredentials: UserCredentials(
            user: user.name, uid: user.uid, gid: user.gid, home: user.home, job: JobInfo(id: job.id, spool: job.spool.path)))).token
        _ = try await node.pull(PullRequest(token: token, source: image), caller: .root) { _ in }
        let run = try await node.createContainer(RunRequest(token: token, imageID: image, script: ["sh", "-c", BatchIntegrationTests.burnTwoCPUSeconds],
                                                            detach: true, workingDir: nil, volumes: []))
        let docker = try #require(node.docker)
        try await docker.start(run.id)
        // A sample while it runs, as the monitor would take, so memory has an integral.
        let monitor = try #require(node.monitor(interval: .seconds(1)))
        try await Task.sleep(for: .milliseconds(500))
        try await monitor.tick()
        #expect(try await docker.wait(run.id) == 0)
        _ = try await node.clean(CleanRequest(adminToken: config.adminToken, token: token))
        return job
    }

    /// `qacct -f FILE -j JOB`'s value of one field as a number (K/M/G suffixes expanded).
    static func qacct(_ file: String, job: String, field: String) async throws -> Double {
        let r = try await runCommand("/usr/bin/qacct", ["-f", file, "-j", job], environment: ["PATH": "/usr/bin:/bin", "LANG": "C"])
        #expect(r.status == 0, "qacct: \(r.stderr)")
        guard let line = r.stdout.split(separator: "\n").first(where: { $0.hasPrefix(field + " ") }) else {
            throw BDockerError.notFound("qacct printed no \(field): \(r.stdout)")
        }
        var value = String(line.dropFirst(field.count)).trimmingCharacters(in: .whitespaces)
        var factor = 1.0
        // mem comes as e.g. "1.458MBs" (GB·s scaled), maxvmem as "3.430MB", cpu as "2.010s".
        let suffixes: [(String, Double)] = [("TBs", 1024), ("GBs", 1), ("MBs", 1.0 / 1024), ("KBs", 1.0 / 1_048_576), ("s", 1),
                                            ("KB", 1024), ("MB", 1_048_576), ("GB", 1_073_741_824), ("K", 1024), ("M", 1_048_576), ("G", 1_073_741_824), ("B", 1)]
        for (suffix, f) in suffixes where value.hasSuffix(suffix) {
            value.removeLast(suffix.count)
            factor = f
            break
        }
        guard let number = Double(value) else { throw BDockerError.invalidInput("qacct's \(field) is '\(line)'") }
        return number * factor
    }

    @Test(arguments: Transport.allCases)
    func recordReachesTheAccountingFileAndQacctReadsIt(over transport: Transport) async throws {
        let acct = try await AccountingDaemon(transport: transport)
        // The job's host is this machine's name (the fake SGE job says so), as the record's is.
        let host = ProcessInfo.processInfo.hostName
        let (config, node, image) = try workingNode(sendingTo: try await acct.nodeConfigLines(host: host))
        // The same admin token on both daemons.
        try config.adminToken.write(toFile: acct.config.dir.file("admin_token"), atomically: true, encoding: .utf8)
        chmod(acct.config.dir.file("admin_token"), 0o600)
        try await acct.start()
        let job = try await runBurningJob(config, node, image: image)
        let outbox = try #require(node.outbox)
        try await outbox.deliverDue()
        let summary = try await outbox.summary()
        #expect(summary.delivered == 1 && summary.pending == 0 && summary.rejected == 0)
        let lines = try await acct.settledLines()
        #expect(lines.count == 1)
        #expect(lines.first?.split(separator: ":", omittingEmptySubsequences: false).count == 45)
        let cpu = try await Self.qacct(acct.accountingFile, job: job.id, field: "cpu")
        let mem = try await Self.qacct(acct.accountingFile, job: job.id, field: "mem")
        let maxvmem = try await Self.qacct(acct.accountingFile, job: job.id, field: "maxvmem")
        #expect(cpu >= 1.5, "qacct cpu \(cpu)")
        // cpuacct.stat splits it: the loop reads /proc in a tight loop, so some is system time.
        let utime = try await Self.qacct(acct.accountingFile, job: job.id, field: "ru_utime")
        let stime = try await Self.qacct(acct.accountingFile, job: job.id, field: "ru_stime")
        #expect(stime > 0 && utime > 0, "qacct ru_utime \(utime) ru_stime \(stime)")
        #expect(abs(utime + stime - cpu) < 0.01, "ru_utime \(utime) + ru_stime \(stime) = cpu \(cpu)")
        #expect(mem > 0, "qacct mem \(mem)")
        #expect(maxvmem > 0, "qacct maxvmem \(maxvmem)")
        // Only a certificate names the sender; the token alone does not.
        #expect(try acct.senders() == [[host, transport == .perNode ? host : nil]])
        // Delivering again changes nothing.
        try await node.database.pool.write { try $0.execute(sql: "UPDATE outbox SET state = 'pending', next_try_at = 0") }
        try await outbox.deliverDue()
        #expect(try await acct.settledLines().count == 1)
    }

    @Test(arguments: [Transport.plain, .perNode])
    func recordWaitsWhileTheAccountingDaemonIsDownThenArrivesOnce(over transport: Transport) async throws {
        let acct = try await AccountingDaemon(transport: transport)
        let (config, node, image) = try workingNode(sendingTo: try await acct.nodeConfigLines(host: ProcessInfo.processInfo.hostName))
        try config.adminToken.write(toFile: acct.config.dir.file("admin_token"), atomically: true, encoding: .utf8)
        chmod(acct.config.dir.file("admin_token"), 0o600)
        _ = try await runBurningJob(config, node, image: image)
        let outbox = try #require(node.outbox)
        try await outbox.deliverDue()
        var pending = try await node.database.pool.read { try OutboxRecord.fetchOne($0) }
        #expect(pending?.state == .pending && pending?.attempts == 1)
        #expect(pending?.lastError?.contains("cannot reach") == true)
        #expect((pending?.nextTryAt ?? 0) > Date().timeIntervalSince1970)  // backing off
        try await acct.start()
        try await outbox.deliverDue(now: Date().timeIntervalSince1970 + 3600)
        pending = try await node.database.pool.read { try OutboxRecord.fetchOne($0) }
        #expect(pending?.state == .delivered)
        #expect(try await acct.settledLines().count == 1)
    }

    /// In per-node mode a node's certificate does not let it send another node's record: the
    /// daemon answers 403 and the node keeps the record as rejected, not retried.
    @Test func anotherNodesRecordIsRejectedOverPerNodeTLS() async throws {
        let acct = try await AccountingDaemon(transport: .perNode)
        let (config, node, _) = try workingNode(sendingTo: try await acct.nodeConfigLines(host: "node1"))
        try config.adminToken.write(toFile: acct.config.dir.file("admin_token"), atomically: true, encoding: .utf8)
        chmod(acct.config.dir.file("admin_token"), 0o600)
        try await acct.start()
        try await node.database.pool.write { db in
            // One finished job of this node's, and one whose record claims to be node2's.
            for (n, host) in ["node1", "node2"].enumerated() {
                var job = JobRecord(batchJobID: "\(78 + n)", taskID: nil, user: "ann", uid: 5000, gid: 5000, home: "/tmp", spoolDir: nil)
                job.state = .cleaned
                try job.insert(db)
                let line = SGEAccountingRecord(qname: "all.q", hostname: host, group: "users", owner: "ann", jobName: "j",
                                               jobNumber: 78 + n, submissionTime: 1_700_000_000, startTime: 1_700_000_010,
                                               endTime: 1_700_000_100).line()
                var record = OutboxRecord(jobID: job.id!, record: "{}", line: line)
                try record.insert(db)
            }
        }
        let outbox = try #require(node.outbox)
        try await outbox.deliverDue()
        let rows = try await node.database.pool.read { try OutboxRecord.order(Column("id")).fetchAll($0) }
        #expect(rows.map(\.state) == [.delivered, .rejected])
        #expect(rows.last?.lastError?.contains("node2") == true, "\(rows.last?.lastError ?? "")")
        #expect(try await acct.settledLines().count == 1)
        #expect(try acct.senders() == [["node1", "node1"]])
    }

    @Test func aRecordTheAccountingDaemonRefusesIsKeptAsRejected() async throws {
        let acct = try await AccountingDaemon()
        let (config, node, _) = try workingNode(accountingEndpoint: acct.endpoint)
        try config.adminToken.write(toFile: acct.config.dir.file("admin_token"), atomically: true, encoding: .utf8)
        chmod(acct.config.dir.file("admin_token"), 0o600)
        try await acct.start()
        // A record the daemon must refuse (44 fields), as if written by a buggy older node.
        try await node.database.pool.write { db in
            var job = JobRecord(batchJobID: "77", taskID: nil, user: "ann", uid: 5000, gid: 5000, home: "/tmp", spoolDir: nil)
            job.state = .cleaned
            try job.insert(db)
            var bad = OutboxRecord(jobID: job.id!, record: "{}", line: Array(repeating: "0", count: 44).joined(separator: ":"))
            try bad.insert(db)
        }
        let outbox = try #require(node.outbox)
        try await outbox.deliverDue()
        let row = try await node.database.pool.read { try OutboxRecord.fetchOne($0) }
        #expect(row?.state == .rejected)
        #expect(row?.attempts == 1)
        #expect(row?.lastError?.contains("45") == true, "\(row?.lastError ?? "")")
        // Not retried: a later pass leaves it alone.
        try await outbox.deliverDue(now: Date().timeIntervalSince1970 + 3600)
        #expect(try await node.database.pool.read { try OutboxRecord.fetchOne($0) }?.attempts == 1)
        #expect((try? acct.lines())?.isEmpty ?? true)
    }

    @Test func killedAccountingDaemonKeepsEveryAcknowledgedRecordExactlyOnce() async throws {
        let acct = try await AccountingDaemon()
        let admin = acct.config.adminToken
        try await acct.start()
        let total = 1000, clients = 16
        let client = DaemonClient(endpoint: acct.endpoint, timeoutSeconds: 10)
        let killer = Task {
            // SIGKILL every ~0.4 s while the clients send, then leave it running.
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(400))
                acct.stop(signal: SIGKILL)
                try await acct.start()
            }
        }
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for c in 0..<clients {
                group.addTask {
                    var acked: [String] = []
                    for i in stride(from: c, to: total, by: clients) {
                        var record = SGEAccountingRecord(qname: "all.q", hostname: "node\(i % 7)", group: "users", owner: "user\(i % 5)",
                                                         jobName: "job\(i)", jobNumber: 100_000 + i, submissionTime: 1_700_000_000,
                                                         startTime: 1_700_000_010 + i, endTime: 1_700_000_100 + i)
                        record.cpu = Double(i) / 10
                        let line = record.line()
                        // Retry until acknowledged, as the working node's sender does.
                        for _ in 0..<400 {
                            if (try? await client.call(.PUT, "/set_accounting", body: SetAccountingRequest(adminToken: admin, accounting: line),
                                                       as: AccountingReceipt.self)) != nil {
                                acked.append(line)
                                break
                            }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                    return acked
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        killer.cancel()
        _ = await killer.result
        acct.stop()
        try await acct.start()  // a restart repairs whatever the last kill interrupted
        #expect(acknowledged.count == total)
        let lines = try acct.lines()
        var counts: [String: Int] = [:]
        for line in lines { counts[line, default: 0] += 1 }
        #expect(lines.count == total, "\(lines.count) lines for \(total) records")
        #expect(acknowledged.allSatisfy { counts[$0] == 1 })
        let db = try BDockerDatabase.open(path: acct.config.settings.server.database, role: "accounting", migrationsDir: nil)
        #expect(try await db.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM records") } == total)
    }
}
