import AsyncHTTPClient
import BDAPI
import BDAccounting
import BDClient
import BDConfig
@testable import BDCore
import BDMetrics
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// `/health`, `/ready` and `/metrics` of the accounting daemon over real HTTP, the port that
/// serves only those, and the JSON log format.
@Suite("Monitoring")
struct MonitoringTests {
    let files = TempDir("bdocker-monitoring")
    let config: TestConfig

    init() throws {
        config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("bdocker_accounting"))",
        ])
    }

    func get(_ endpoint: String, _ path: String) async throws -> (status: Int, body: String, contentType: String?) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://\(endpoint)\(path)"), timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), body, response.headers.first(name: "Content-Type"))
    }

    func notify(_ client: DaemonClient, _ record: SGEAccountingRecord) async throws -> AccountingReceipt {
        try await client.call(.PUT, "/set_accounting", body: SetAccountingRequest(adminToken: config.adminToken, accounting: record.line()))
    }

    @Test func accountingMetricsCountWhatHappenedAndNameNoUserOrJob() async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let (router, services, _) = try daemon.components()
        _ = services
        let server = try await RunningDaemon.start(router: router)
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        let first = SampleAccounting.record(job: 4242, owner: "zelda"), second = SampleAccounting.record(job: 4243, owner: "zelda")
        #expect(try await notify(client, first).new)
        #expect(try await notify(client, second).new)
        #expect(try await notify(client, first).new == false)  // a resend: acknowledged, not stored twice

        // The file follows the store; the gauges are read when scraped.
        _ = try await eventually {
            let text = (try? String(contentsOfFile: files.file("bdocker_accounting"), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").count >= SGEAccountingRecord.fileHeader.split(separator: "\n").count + 2
        }
        let scrape = try await get(server.endpoint, "/metrics")
        #expect(scrape.status == 200)
        #expect(scrape.contentType == DaemonMetrics.contentType)
        let metrics = try PrometheusText.parse(scrape.body)
        #expect(metrics.value("bdocker_accounting_records_stored_total") == 2)
        #expect(metrics.value("bdocker_accounting_duplicates_total") == 1)
        #expect(metrics.value("bdocker_accounting_records") == 2)
        #expect(metrics.value("bdocker_accounting_records_not_in_file") == 0)
        #expect(metrics.value("bdocker_accounting_ingest_duration_seconds_count") == 3)
        #expect((metrics.value("bdocker_accounting_file_sync_duration_seconds_count") ?? 0) >= 1)
        let size = try FileManager.default.attributesOfItem(atPath: files.file("bdocker_accounting"))[.size] as? Int
        #expect(metrics.value("bdocker_accounting_file_bytes") == size.map(Double.init))
        #expect(metrics.types["bdocker_accounting_ingest_duration_seconds"] == "histogram")
        #expect(metrics.types["bdocker_accounting_records_stored_total"] == "counter")
        // Cardinality: no user, job, host or record in any label.
        for value in metrics.labelValues {
            #expect(!["zelda", "4242", "4243", "node1", "burn-4242"].contains(where: value.contains), "\(value)")
        }
    }

    @Test func healthAndReadinessOfTheAccountingDaemon() async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router())
        defer { Task { await server.stop() } }
        let health = try await get(server.endpoint, "/health")
        #expect(health.status == 200)
        #expect(try JSONDecoder().decode(Envelope<HealthReply>.self, from: Data(health.body.utf8)).results == HealthReply(alive: true, role: "accounting"))
        let ready = try await get(server.endpoint, "/ready")
        #expect(ready.status == 200, "\(ready.body)")
        let result = try JSONDecoder().decode(Envelope<ReadinessResult>.self, from: Data(ready.body.utf8)).results
        #expect(result.ready)
        #expect(result.checks.map(\.name) == ["database", "accounting_file"])
        // The probe is a real write: its row is there.
        #expect(try await daemon.database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM readiness_probe") } == 1)
    }

    @Test func aReadOnlyDatabaseIsNotReady() async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        // A trigger stands in for a filesystem gone read-only: the probe's write fails, and
        // nothing else about the daemon changes.
        try await daemon.database.pool.write { db in
            try db.execute(sql: "CREATE TRIGGER no_probe BEFORE INSERT ON readiness_probe BEGIN SELECT RAISE(ABORT, 'disk is read-only'); END")
        }
        let server = try await RunningDaemon.start(router: try daemon.router())
        defer { Task { await server.stop() } }
        let ready = try await get(server.endpoint, "/ready")
        #expect(ready.status == 503)
        let envelope = try JSONDecoder().decode(Envelope<ReadinessResult>.self, from: Data(ready.body.utf8))
        #expect(envelope.statusCode == 503 && !envelope.results.ready)
        let database = try #require(envelope.results.checks.first { $0.name == "database" })
        #expect(!database.ok && database.detail.contains("disk is read-only"))
        #expect(envelope.results.checks.first { $0.name == "accounting_file" }?.ok == true)
        // Liveness does not depend on it.
        #expect(try await get(server.endpoint, "/health").status == 200)
    }

    @Test func theMonitoringPortServesNothingElse() async throws {
        let settings = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("bdocker_accounting"))",
            "[server]\n": "[server]\nmetrics_port = 9999\nmetrics_host = 127.0.0.2\n",
        ]).settings
        #expect(Daemon.listeners(for: settings).map(\.description).last == "127.0.0.2:9999")
        #expect(Daemon.listeners(for: settings).last?.monitoringOnly == true)
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: Routes.monitoringOnly(try daemon.router(), logger: Logger(label: "test")))
        defer { Task { await server.stop() } }
        for path in ["/health", "/ready", "/metrics"] {
            #expect(try await get(server.endpoint, path).status == 200, "\(path)")
        }
        #expect(try await get(server.endpoint, "/status").status == 404)
        let client = DaemonClient(endpoint: server.endpoint)
        let (status, _) = try await client.raw(.PUT, "/set_accounting",
                                               body: SetAccountingRequest(adminToken: config.adminToken, accounting: SampleAccounting.record(job: 1).line()))
        #expect(status == 404 || status == 405)
        #expect(try await daemon.database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM records") } == 0)
    }

    /// The real bdockerd with `log_format = json`: every line it writes, to stderr and to
    /// `logging_file`, is one JSON object with the fields.
    @Test func theDaemonLogsJSONLines() async throws {
        let (fd, port) = try loopbackSocket(listening: false)
        close(fd)
        let logFile = files.file("bdockerd.log"), stderrFile = files.file("stderr.log")
        let json = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("bdocker_accounting"))",
            "port = 5001": "port = \(port)",
            "# logging_file = /var/log/bdocker/bdockerd-accounting.log": "logging_file = \(logFile)",
            "log_format = text": "log_format = json",
        ])
        #expect(json.settings.server.logFormat == .json)
        _ = FileManager.default.createFile(atPath: stderrFile, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repo.binDir + "/bdockerd")
        process.arguments = ["--config", json.configPath]
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrFile))
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let client = DaemonClient(endpoint: "127.0.0.1:\(port)", timeoutSeconds: 5)
        let up = try await eventually(within: .seconds(20)) {
            guard process.isRunning else { return false }
            return (try? await client.raw(.GET, "/health").0) == 200
        }
        #expect(up)
        process.terminate()  // SIGTERM: a clean stop, which logs too
        process.waitUntilExit()
        for path in [logFile, stderrFile] {
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count >= 2, "\(path): \(lines)")
            for line in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
                #expect(object["timestamp"] is String && object["level"] is String && object["message"] is String
                        && object["label"] is String && object["line"] is Int, "\(line)")
            }
        }
    }

    @Test func jsonLogLinesCarryTheTextLinesFields() throws {
        let when = Date(timeIntervalSince1970: 1_764_403_200.25)
        let line = JSONLogHandler.line(timestamp: when, level: .warning, label: "bdockerd", message: "job \"7\" on /x\nnext",
                                       metadata: ["job": "7", "attempt": .stringConvertible(3), "tags": .array(["a", "b"])],
                                       source: "BDWorkingNode", file: "BDWorkingNode/OutboxSender.swift", line: 42)
        #expect(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil, "one line per entry")
        #expect(line == #"{"file":"BDWorkingNode/OutboxSender.swift","label":"bdockerd","level":"warning","line":42,"# +
            #""message":"job \"7\" on /x\nnext","metadata":{"attempt":"3","job":"7","tags":["a","b"]},"# +
            #""source":"BDWorkingNode","timestamp":"2025-11-29T08:00:00.250Z"}"# + "\n")
        // Without metadata there is no metadata member.
        let bare = JSONLogHandler.line(timestamp: when, level: .info, label: "l", message: "m", metadata: [:], source: "s", file: "f", line: 1)
        #expect(!bare.contains("metadata"))
    }
}

/// `GET /health`'s results, as a client reads them.
struct HealthReply: Codable, Equatable {
    var alive: Bool
    var role: String
}
