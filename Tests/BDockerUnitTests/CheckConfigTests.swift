import BDConfig
import BDCore
import BDTestSupport
import Foundation
import Testing

/// `bdockerd --check-config` (the real binary) runs every check the daemon makes at start and
/// exits 78 for a configuration problem, 69 for something outside it, 0 when all is well.
@Suite("bdockerd --check-config")
struct CheckConfigTests {
    func check(_ config: TestConfig) async throws -> CommandResult {
        try await runCommand(Repo.binDir + "/bdockerd", ["--config", config.configPath, "--check-config"])
    }

    @Test func aTooShortAdminTokenIs78AndNamed() async throws {
        let config = try TestConfig(role: .accounting)
        try "short1\n".write(toFile: config.dir.file("admin_token"), atomically: false, encoding: .utf8)
        let result = try await check(config)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("[credentials] admin_token_file") && result.stderr.contains("too short"), "\(result.stderr)")
    }

    @Test func anUnknownBatchControllerIs78AndNamed() async throws {
        let config = try TestConfig(replacing: ["controller = SGEWNController": "controller = NoSuchController"])
        let result = try await check(config)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("[batch] controller") && result.stderr.contains("NoSuchController"), "\(result.stderr)")
    }

    @Test func aMissingCgroupsDirIs78AndNamed() async throws {
        let config = try TestConfig(replacing: ["cgroups_dir = /sys/fs/cgroup": "cgroups_dir = /nonexistent/cgroup"])
        let result = try await check(config)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("cgroups_dir"), "\(result.stderr)")
    }

    /// What passed is on stdout before the error: the admin can see how far the check got.
    @Test func anEngineThatDoesNotAnswerIs69AfterWhatPassed() async throws {
        let config = try TestConfig(replacing: [
            "base_url = unix:///var/run/docker.sock": "base_url = unix:///nonexistent/docker.sock",
            "enable_cgroups = true": "enable_cgroups = false",
        ])
        let result = try await check(config)
        #expect(result.status == 69, "\(result.stderr)")
        #expect(result.stderr.contains("[dockerAPI] base_url") && result.stderr.contains("does not answer"), "\(result.stderr)")
        #expect(result.stdout.contains("admin token:") && result.stdout.contains("batch controller:"), "\(result.stdout)")
    }

    @Test func aGoodAccountingConfigPassesAndATakenPortIs69() async throws {
        let socket = try loopbackSocket(listening: true)
        let port = (fd: socket.fd, number: socket.port)
        let files = TempDir("bdocker-check")
        let accounting = ["bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("accounting"))"]
        let taken = try TestConfig(role: .accounting, replacing: accounting.merging(["port = 5001": "port = \(port.number)"]) { $1 })
        let result = try await check(taken)
        #expect(result.status == 69, "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:\(port.number)") && result.stderr.contains("in use"), "\(result.stderr)")

        close(port.fd)  // now free
        let free = try TestConfig(role: .accounting, replacing: accounting.merging(["port = 5001": "port = \(port.number)"]) { $1 })
        let ok = try await check(free)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("listen: 127.0.0.1:") && ok.stdout.contains("applied: none"), "\(ok.stdout)")
    }
}

@Suite("bdockerd start-up failures")
struct StartupFailureTests {
    /// The port taken: one line naming the address and the fix, exit 69, no NIO internals.
    @Test func aTakenPortIsOneClearLine() async throws {
        let socket = try loopbackSocket(listening: true)
        defer { close(socket.fd) }
        let files = TempDir("bdocker-start")
        let config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("accounting"))",
            "port = 5001": "port = \(socket.port)",
        ])
        let result = try await runCommand(Repo.binDir + "/bdockerd", ["--config", config.configPath])
        #expect(result.status == 69, "\(result.stderr)")
        #expect(result.stderr.contains("cannot listen on 127.0.0.1:\(socket.port): the address is in use"), "\(result.stderr)")
        #expect(!result.stderr.contains("bind(descriptor"), "\(result.stderr)")
    }
}

@Suite("Configuration: hints for typos")
struct ConfigHintTests {
    static let base = "[resource]\nrole = accounting\n[server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /x\n"

    @Test func aMisspelledKeyGetsTheNearestKnownOne() throws {
        let ini = try INIFile(path: "t.cfg", text: Self.base + "enable_cgroup = yes\nmonitoring_tme = 5\nfrobnicate = 1\n")
        let warnings = try SettingsLoader.settings(from: ini).warnings
        #expect(warnings.contains { $0.contains("enable_cgroup is not a bdocker key") && $0.contains("did you mean enable_cgroups?") })
        #expect(warnings.contains { $0.contains("monitoring_tme") && $0.contains("did you mean monitoring_time?") })
        #expect(warnings.contains { $0.contains("frobnicate is not a bdocker key") && !$0.contains("did you mean") })
    }

    @Test func aSectionInTheWrongCaseSaysSo() throws {
        let ini = try INIFile(path: "t.cfg", text: "[resource]\nrole = accounting\n[Server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /x\n")
        #expect {
            try SettingsLoader.settings(from: ini)
        } throws: { error in
            "\(error)".contains("[server]") && "\(error)".contains("the file has [Server]: section names are case-sensitive")
        }
        let extra = try INIFile(path: "t.cfg", text: Self.base + "[Credentials]\n")
        #expect(try SettingsLoader.settings(from: extra).warnings.contains { $0.contains("case-sensitive: use [credentials]") })
    }
}
