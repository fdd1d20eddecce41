@testable import BDAPI
import BDClient
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Hummingbird
import Logging
import Testing

/// Keeps every message logged, for tests that check what reached the log.
final class CapturedLog: @unchecked Sendable {
    // @unchecked: `lines` is only touched under `lock`.
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var text: String { lock.withLock { lines.joined(separator: "\n") } }

    var logger: Logger { Logger(label: "captured") { _ in Handler(log: self) } }

    struct Handler: LogHandler {
        let log: CapturedLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { log.append("\(event.level): \(event.message)") }
    }
}

/// A failure from below bdocker, with text that must never reach a user.
struct SecretFailure: Error, CustomStringConvertible {
    var description: String { "disk I/O error in /var/lib/bdocker/secret-table" }
}

@Suite("Errors")
struct ErrorTests {
    @Test func causeIsKeptForTheLogButNotInTheMessage() throws {
        let error = #expect(throws: BDockerError.self) {
            try BDockerError.wrapping("reading job 7 failed") { () throws -> Int in throw SecretFailure() }
        }
        #expect(error?.message == "reading job 7 failed")
        #expect(error?.httpStatus == 500)
        #expect(error?.cause is SecretFailure)
        #expect(error?.description.contains("secret-table") == true)
        // The cause is a detail: errors of the same class and message are equal.
        #expect(error == .internalFault("reading job 7 failed"))
    }

    @Test func wrappingPassesBDockerErrorsThrough() async throws {
        let error = await failure { () async throws(BDockerError) -> Int in
            try await BDockerError.wrapping("should not show") { () async throws -> Int in
                throw BDockerError.conflict("job 7 is already configured")
            }
        }
        #expect(error == .conflict("job 7 is already configured"))
        #expect(error?.cause == nil)
    }

    @Test func permanenceFollowsTheClass() {
        let permanent: [BDockerError] = [.invalidInput("x"), .unauthorized("x"), .forbidden("x"), .notFound("x"), .conflict("x")]
        let passing: [BDockerError] = [.unavailable("x"), .internalFault("x"), .internalFault("x", cause: SecretFailure())]
        #expect(permanent.allSatisfy { $0.isPermanent })
        #expect(!passing.contains { $0.isPermanent })
        // The client rebuilds the class from the status, so permanence survives the wire.
        for status in [400, 401, 403, 404, 409, 422] { #expect(BDockerError.fromHTTP(status: status, message: "").isPermanent) }
        for status in [500, 502, 503, 504] { #expect(!BDockerError.fromHTTP(status: status, message: "").isPermanent) }
    }

    @Test func unexpectedErrorsAre500sThatLogButDoNotSendTheCause() async throws {
        let log = CapturedLog()
        let router = Router(context: BDContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(logger: log.logger))
        router.get("raw") { _, _ -> Response in throw SecretFailure() }
        router.get("wrapped") { _, _ -> Response in
            try BDockerError.wrapping("listing the job's containers failed") { () throws -> Response in throw SecretFailure() }
        }
        let server = try await RunningDaemon.start(router: router)
        defer { Task { await server.stop() } }
        let client = DaemonClient(endpoint: server.endpoint, timeoutSeconds: 30)
        for (path, message) in [("/raw", "internal error; see the daemon's log"), ("/wrapped", "listing the job's containers failed")] {
            let (status, data) = try await client.raw(.GET, path)
            let body = String(decoding: data, as: UTF8.self)
            #expect(status == 500, "\(path): \(body)")
            #expect(body.contains(message), "\(path): \(body)")
            #expect(!body.contains("secret-table"), "\(path): \(body)")
            // The log line names the request, its caller and the cause.
            #expect(log.text.contains("GET \(path) by a TCP client: \(message): disk I/O error in /var/lib/bdocker/secret-table"), "\(log.text)")
        }
    }
}

/// The outbox decides between "rejected" and "retry" from the error's class alone.
@Suite("Outbox decisions")
struct OutboxDecisionTests {
    let dir = TempDir("bdocker-outbox")

    /// One pending record, delivered once to an accounting daemon that fails with `error`.
    func deliver(failingWith error: BDockerError) async throws -> OutboxRecord {
        let database = try BDockerDatabase.open(path: dir.file("w.sqlite"), role: "working", migrationsDir: nil)
        let id = try await database.pool.write { db in
            var job = JobRecord(batchJobID: "7", taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/h", spoolDir: nil)
            try job.insert(db)
            var record = OutboxRecord(jobID: job.id!, record: "{}", line: "line", createdAt: 0)
            try record.insert(db)
            return record.id!
        }
        let router = Router(context: BDContext.self)
        router.add(middleware: ErrorEnvelopeMiddleware(logger: Logger(label: "test")))
        router.put("set_accounting") { _, _ -> Response in throw error }
        let server = try await RunningDaemon.start(router: router)
        defer { Task { await server.stop() } }
        let sender = OutboxSender(pool: database.pool, endpoint: server.endpoint, adminToken: "t", timeoutSeconds: 30,
                                  logger: Logger(label: "test"))
        try await sender.deliverDue(now: 1)
        return try #require(try await database.pool.read { db in try OutboxRecord.fetchOne(db, key: id) })
    }

    @Test(arguments: [BDockerError.invalidInput("bad line"), .forbidden("not the admin token"), .conflict("a different record")])
    func refusedRecordsAreRejected(_ error: BDockerError) async throws {
        let row = try await deliver(failingWith: error)
        #expect(row.state == .rejected)
        #expect(row.attempts == 1)
        #expect(row.lastError == error.message)
    }

    @Test(arguments: [BDockerError.unavailable("accounting file busy"), .internalFault("store failed")])
    func passingFailuresAreRetried(_ error: BDockerError) async throws {
        let row = try await deliver(failingWith: error)
        #expect(row.state == .pending)
        #expect(row.attempts == 1)
        #expect(row.nextTryAt > Date().timeIntervalSince1970 - 5)
        #expect(row.lastError == error.message)
    }
}
