import BDAPI
import BDConfig
import BDCore
import BDTestSupport
import Foundation
import Logging
import Testing

/// Password guessing against the usage report, as a real non-root user with curl: after five
/// failed sign-ins from one address that address is refused (429, Retry-After), even with the
/// right password, while another address still signs in.
@Suite("Usage report: password guessing", .requires(.root, .testUsers))
struct ReportSignInTests {
    let files = TempDir("bdocker-signin")

    /// `curl` as `user` from the source address `from`; the status and Retry-After.
    func signIn(_ user: PasswdEntry, _ server: RunningDaemon, from: String, password: String) async throws -> (status: Int, retryAfter: Int?) {
        let result = try await runCommand("/usr/bin/setpriv", [
            "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
            "/usr/bin/curl", "-s", "-o", "/dev/null", "-D", "-", "--interface", from, "-u", "auditor:\(password)",
            "http://\(server.endpoint)/report",
        ])
        #expect(result.status == 0, "curl: \(result.stderr)")
        let lines = result.stdout.split(separator: "\r\n")
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        let retryAfter = lines.first { $0.lowercased().hasPrefix("retry-after:") }
            .flatMap { Int($0.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespaces)) }
        return (status, retryAfter)
    }

    @Test func aGuesserIsHeldOffAndOthersAreNot() async throws {
        let users = ReportUsersFixture.write(files, [("auditor", "correct horse")])
        let config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("accounting"))",
            "# [report]\n# users_file = /etc/bdocker/report_users": "[report]\nusers_file = \(users)",
        ])
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router())
        do {
            let bob = try testUser(1), ann = try testUser()
            for guess in ["123456", "password", "auditor", "letmein", "correct-horse"] {
                let reply = try await signIn(bob, server, from: "127.0.0.1", password: guess)
                #expect(reply.status == 401, "guess '\(guess)': \(reply.status)")
            }
            // Locked out: even the right password is refused, and told when to come back.
            let held = try await signIn(bob, server, from: "127.0.0.1", password: "correct horse")
            #expect(held.status == 429)
            #expect((1...60).contains(held.retryAfter ?? 0), "Retry-After: \(String(describing: held.retryAfter))")
            // Another address is not held off by bob's guesses; its failures are its own.
            let other = try await signIn(ann, server, from: "127.0.0.2", password: "correct horse")
            #expect(other.status == 200)
            let wrong = try await signIn(ann, server, from: "127.0.0.2", password: "nope")
            #expect(wrong.status == 401)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}
