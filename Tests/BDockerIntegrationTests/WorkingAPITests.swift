import AsyncHTTPClient
import BDAPI
import BDClient
import BDConfig
import BDCore
import BDCredentials
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import NIOHTTP1
import Testing

/// The working-node endpoints over real HTTP, against an in-process daemon.
@Suite("Working-node API", .requires(.root, .cgroupsV1))
struct WorkingAPITests {
    let config: TestConfig
    let home: TempDir

    init() throws {
        config = try TestConfig()
        home = TempDir("bdocker-api-home")
    }

    /// A node whose passwd knows ann, uid 5000, with a temp HOME (no real user needed here).
    func startNode() async throws -> (WorkingNode, RunningDaemon) {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let homePath = home.path
        let node = WorkingNode(database: daemon.database, tokens: try daemon.tokenController(), docker: nil, logger: Logger(label: "test"),
                               passwd: { $0 == "ann" ? PasswdEntry(name: "ann", uid: 5000, gid: 5000, home: homePath) : nil })
        return (node, try await RunningDaemon.start(router: Routes.working(node), socket: config.socketPath))
    }

    func credentials(job: String, task: String? = nil) -> UserCredentials {
        UserCredentials(user: "ann", uid: 5000, gid: 5000, home: home.path, job: JobInfo(id: job, taskID: task))
    }

    @Test func configureThenClean() async throws {
        let (node, server) = try await startNode()
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        let token: String = try await client.call(.POST, "/configuration",
                                                  body: ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "100")))
        #expect(try await node.tokens.authenticate(token).jobKey == "100")
        let (status, data) = try await client.raw(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, token: token))
        #expect(status == 200)
        let envelope = try JSONDecoder().decode(Envelope<String>.self, from: data)
        #expect(envelope.statusCode == 200)
        #expect(envelope.results.contains("100"))
        // Cleaned means gone: the token no longer works and a second clean is refused.
        await #expect(throws: BDockerError.self) { try await node.tokens.authenticate(token) }
        let (again, _) = try await client.raw(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, token: token))
        #expect(again == 401)
    }

    @Test func errorsHaveTheRightStatusAndEnvelope() async throws {
        let (_, server) = try await startNode()
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        let userToken: String = try await client.call(.POST, "/configuration",
                                                      body: ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "200")))
        func status(_ body: any Encodable & Sendable, _ method: HTTPMethod = .POST, _ path: String = "/configuration") async throws -> (Int, String) {
            let (code, data) = try await client.raw(method, path, body: body)
            let envelope = try JSONDecoder().decode(Envelope<String>.self, from: data)
            #expect(envelope.statusCode == code)
            return (code, envelope.results)
        }
        // Over TCP nobody is root, whatever token comes along: configure and clean are refused.
        let (node, _) = try await startNode()
        let tcp = try await RunningDaemon.start(router: Routes.working(node))
        defer { Task { await tcp.stop() } }
        let overTCP = DaemonClient(endpoint: tcp.endpoint)
        for body in [ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "201")),
                     ConfigureRequest(adminToken: userToken, userCredentials: credentials(job: "201"))] {
            let (code, data) = try await overTCP.raw(.POST, "/configuration", body: body)
            #expect(code == 403)
            #expect(String(decoding: data, as: UTF8.self).contains("only from root on the daemon's unix socket"))
        }
        #expect(try await overTCP.raw(.DELETE, "/clean", body: CleanRequest(job: JobInfo(id: "200"))).0 == 403)
        // The same job twice.
        let dup = try await status(ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "200")))
        #expect(dup.0 == 409 && dup.1.contains("already configured"))
        // Users that do not match the passwd database.
        var wrong = credentials(job: "202")
        wrong.uid = 0
        #expect(try await status(ConfigureRequest(adminToken: config.adminToken, userCredentials: wrong)).0 == 400)
        wrong = credentials(job: "202")
        wrong.user = "mallory"
        #expect(try await status(ConfigureRequest(adminToken: config.adminToken, userCredentials: wrong)).1.contains("passwd"))
        wrong = credentials(job: "../../etc")
        #expect(try await status(ConfigureRequest(adminToken: config.adminToken, userCredentials: wrong)).0 == 400)
        // Malformed bodies say what is wrong.
        let missing = try await status(["admin_token": config.adminToken])
        #expect(missing.0 == 400 && missing.1.contains("user_credentials"))
        let (code, data) = try await client.raw(.GET, "/no-such-thing")
        #expect(code == 404)
        #expect(try JSONDecoder().decode(Envelope<String>.self, from: data).statusCode == 404)
        // Clean with a token nobody issued.
        #expect(try await status(CleanRequest(adminToken: config.adminToken, token: "nope"), .DELETE, "/clean").0 == 401)
    }

    @Test func adminCanCleanAJobWhoseTokenWasLost() async throws {
        let (node, server) = try await startNode()
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        let token: String = try await client.call(.POST, "/configuration",
            body: ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "500", task: "2")))
        let missing = try await client.raw(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, job: JobInfo(id: "500")))
        #expect(missing.0 == 404)
        // A token of another job next to the job named: refused, nothing cleaned.
        let other: String = try await client.call(.POST, "/configuration", body: ConfigureRequest(userCredentials: credentials(job: "501")))
        let mixed = try await client.raw(.DELETE, "/clean", body: CleanRequest(job: JobInfo(id: "500", taskID: "2"), token: other))
        #expect(mixed.0 == 403)
        #expect(try await node.tokens.authenticate(token).jobKey == "500.2")
        let message: String = try await client.call(.DELETE, "/clean",
                                                    body: CleanRequest(adminToken: config.adminToken, job: JobInfo(id: "500", taskID: "2")))
        #expect(message.contains("500.2"))
        await #expect(throws: BDockerError.self) { try await node.tokens.authenticate(token) }
    }

    /// This node has no engine at all (docker: nil): `ps` of a job without containers still
    /// answers, from the store, while a call that needs the engine is 503.
    @Test func psOfAJobWithoutContainersNeedsNoEngine() async throws {
        let (_, server) = try await startNode()
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        let token: String = try await client.call(.POST, "/configuration", body: ConfigureRequest(userCredentials: credentials(job: "700")))
        let rows: [ContainerRow] = try await client.call(.GET, "/ps", query: ["token": token, "all": "1"])
        #expect(rows.isEmpty)
        #expect(try await client.raw(.GET, "/info", query: ["token": token]).0 == 503)
    }

    @Test func arrayTasksAreDistinctJobs() async throws {
        let (node, server) = try await startNode()
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint)
        var keys: Set<String> = []
        for task in ["1", "2", "3"] {
            let token: String = try await client.call(.POST, "/configuration",
                body: ConfigureRequest(adminToken: config.adminToken, userCredentials: credentials(job: "300", task: task)))
            keys.insert(try await node.tokens.authenticate(token).jobKey)
        }
        #expect(keys == ["300.1", "300.2", "300.3"])
    }

    @Test func sixteenConcurrentConfiguresAndCleans() async throws {
        let (node, server) = try await startNode()
        defer { Task { await server.stop() } }
        let admin = config.adminToken
        let (tokens, statuses) = try await withConcurrentClient(endpoint: server.endpoint) { client in
            let creds = (0..<16).map { credentials(job: "4\($0)") }
            let tokens = try await withThrowingTaskGroup(of: (String, String).self) { group in
                for c in creds {
                    group.addTask {
                        (c.job.id, try await client.call(.POST, "/configuration", body: ConfigureRequest(adminToken: admin, userCredentials: c)))
                    }
                }
                return try await group.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
            }
            #expect(tokens.count == 16)
            #expect(Set(tokens.values).count == 16)
            for (job, token) in tokens {
                #expect(try await node.tokens.authenticate(token).jobKey == job)
            }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for token in tokens.values {
                    group.addTask { try await client.raw(.DELETE, "/clean", body: CleanRequest(adminToken: admin, token: token)).0 }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            return (tokens, statuses)
        }
        #expect(statuses == Array(repeating: 200, count: 16))
        let live = try await node.database.pool.read { try JobRecord.filter(Column("state") == "configured").fetchCount($0) }
        #expect(live == 0)
        for token in tokens.values {
            await #expect(throws: BDockerError.self) { try await node.tokens.authenticate(token) }
        }
    }

    @Test func statusShowsMigrations() async throws {
        let (_, server) = try await startNode()
        defer { Task { await server.stop() } }
        let status: StatusResult = try await DaemonClient(endpoint: server.endpoint).call(.GET, "/status")
        #expect(status.role == "working")
        #expect(status.migrations.first == "0001_init")
    }
}
