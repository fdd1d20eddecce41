@testable import BDAPI
import BDClient
import BDCore
import BDTestSupport
import Foundation
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
            #expect(log.text.contains("GET \(path): \(message): disk I/O error in /var/lib/bdocker/secret-table"), "\(log.text)")
        }
    }
}
