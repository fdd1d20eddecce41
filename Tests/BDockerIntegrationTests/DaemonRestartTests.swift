import BDAccounting
import BDBatch
import BDClient
import BDCore
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Testing

/// bdockerd as a real process: killed with SIGKILL while a job runs, started again.
@Suite("Daemon restart", .requires(.root, .cgroupsV1, .testUsers))
struct DaemonRestartTests {
    func startDaemon(_ config: TestConfig) async throws -> Process { try await startBdockerd(config) }

    @Test func sigtermStopsCleanlyAndLogsGoToTheLogFileToo() async throws {
        let config = try TestConfig(replacing: ["# logging_file = /var/log/bdocker/bdockerd.log": "logging_file = LOGFILE"])
        let logFile = config.dir.file("bdockerd.log")
        let text = try String(contentsOfFile: config.configPath, encoding: .utf8).replacingOccurrences(of: "LOGFILE", with: logFile)
        try text.write(toFile: config.configPath, atomically: true, encoding: .utf8)
        let daemon = try await startDaemon(config)
        // A user action is one INFO line naming the job and its user; a refused call names the
        // caller's uid.
        let user = try testUser()
        let client = DaemonClient(endpoint: config.endpoint)
        let job = "log\(Int.random(in: 100_000...999_999))"
        let token: String = try await client.call(.POST, "/configuration", body: ConfigureRequest(
            userCredentials: UserCredentials(user: user.name, uid: user.uid, gid: user.gid, home: user.home, job: JobInfo(id: job))))
        _ = try? await client.raw(.POST, "/pull", body: PullRequest(token: token, source: "busybox:logged"))
        _ = try await client.raw(.PUT, "/rm", body: RemoveRequest(token: "not-a-token", containerID: ["x"], force: false))
        _ = try await client.raw(.DELETE, "/clean", body: CleanRequest(job: JobInfo(id: job)))
        daemon.terminate()  // SIGTERM
        daemon.waitUntilExit()
        #expect(daemon.terminationReason == .exit && daemon.terminationStatus == 0)
        let log = try String(contentsOfFile: logFile, encoding: .utf8)
        #expect(log.contains("listening on \(config.socketPath)"))
        #expect(log.contains("job \(job) (\(user.name)): pull busybox:logged"), "\(log)")
        #expect(log.contains("PUT /rm by uid 0"), "\(log)")
        #expect(log.contains("stopped"))
    }

    @Test func killedDaemonResumesSamplingAndCleanMakesOneRecord() async throws {
        try #require(geteuid() == 0, "real cgroups need root")
        let user = try testUser()
        let config = try TestConfig()
        let job = try BatchIntegrationTests.FakeSGEJob(user: user, selfBurnSeconds: 600)
        let client = DaemonClient(endpoint: config.endpoint)

        var daemon = try await startDaemon(config)
        let token: String = try await client.call(.POST, "/configuration", body: ConfigureRequest(
            adminToken: config.adminToken,
            userCredentials: UserCredentials(user: user.name, uid: user.uid, gid: user.gid, home: user.home,
                                             job: JobInfo(id: job.id, spool: job.spool.path))))
        job.go()
        let db = try BDockerDatabase.open(path: config.settings.server.database, role: "working", migrationsDir: nil)
        func samples() async throws -> Int {
            try await db.pool.read { try SampleRecord.fetchCount($0) }
        }
        // A couple of one-second ticks (polled: a busy machine delays them).
        #expect(try await eventually { try await samples() >= 2 }, "no samples before the kill")
        kill(daemon.processIdentifier, SIGKILL)
        daemon.waitUntilExit()
        let before = try await samples()

        daemon = try await startDaemon(config)
        defer { daemon.terminate(); daemon.waitUntilExit() }
        #expect(try await eventually { try await samples() >= before + 2 }, "sampling did not resume after the restart")

        let message: String = try await client.call(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, token: token))
        #expect(message.contains("cleaned"))
        let records = try await db.pool.read { try OutboxRecord.fetchAll($0) }
        #expect(records.count == 1)
        let record = try JSONDecoder().decode(SGEAccountingRecord.self, from: Data(try #require(records.first).record.utf8))
        // The shell burned in COMMON the whole time; with only_docker_accounting that is not the containers'.
        #expect(record.cpu < 0.5)
        #expect("\(record.jobNumber)" == job.id)
        // A second clean of the same token cannot make a second record.
        let (again, _) = try await client.raw(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, token: token))
        #expect(again == 401)
        #expect(try await db.pool.read { try OutboxRecord.fetchCount($0) } == 1)
    }
}
