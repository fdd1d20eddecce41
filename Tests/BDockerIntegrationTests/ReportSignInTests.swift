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

    /// `systemctl reload` (SIGHUP) to the real bdockerd: the users file is read again, so a
    /// removed auditor is out and a new one in without a restart; a file that fails its checks
    /// now is refused (logged with file, section and key) and the users before stay.
    @Test func sighupReadsTheUsersFileAgainAndABadOneChangesNothing() async throws {
        let usersPath = ReportUsersFixture.write(files, [("auditor", "correct horse")])
        let port = try freeLoopbackPort()
        let config = try TestConfig.accounting(port: port, accountingFile: files.file("accounting"), replacing: [
            "# [report]\n# users_file = /etc/bdocker/report_users": "[report]\nusers_file = \(usersPath)",
        ])
        let daemon = try LoggedBdockerd(config)
        defer { daemon.stop() }
        let url = "http://127.0.0.1:\(port)/report"
        func status(_ user: String, _ password: String) async throws -> String {
            try await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "\(user):\(password)", url]).stdout
        }
        var first = ""
        for _ in 0..<300 {
            first = try await status("auditor", "correct horse")
            if first != "000" { break }  // curl's word for no answer: not listening yet
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(first == "200")

        // Replaced (written beside it and renamed over it, as an editor does): boss only.
        let staged = ReportUsersFixture.write(files, [("boss", "new pw")], name: "report_users.new")
        #expect(rename(staged, usersPath) == 0)
        daemon.signal(SIGHUP)
        let reread = try await daemon.line(containing: "SIGHUP:")
        #expect(reread.contains("read \(usersPath) again: 1 user(s), added boss, removed auditor"), "\(reread)")
        #expect(try await status("boss", "new pw") == "200")
        #expect(try await status("auditor", "correct horse") == "401")

        // Now readable by others: refused as at start, and boss keeps his access.
        chmod(usersPath, 0o644)
        daemon.signal(SIGHUP)
        let refused = try await daemon.line(containing: "SIGHUP:", occurrence: 2)
        #expect(refused.contains("\(config.configPath): [report] users_file: \(usersPath) has mode 644"), "\(refused)")
        #expect(refused.contains("the 1 user(s) read before stay"), "\(refused)")
        #expect(try await status("boss", "new pw") == "200")
        #expect(daemon.process.isRunning)
    }
}
