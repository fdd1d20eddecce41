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

    /// A bind root others could redirect is a configuration error (78, naming the key and the
    /// directory to fix); one not there yet is a warning and the check goes on (here to an
    /// engine that does not answer: 69). Root's: the tree must be root's to be a good root.
    @Test(.requires(.root)) func anUnsafeBindRootIs78AndAMissingOneAWarning() async throws {
        let tree = TempDir("bdocker-roots")
        chmod(tree.path, 0o755)
        let open = tree.mkdir("open")
        chmod(open, 0o777)  // anyone may rename what is in it: no place for a root's way
        _ = tree.mkdir("open/area")
        let noEngine = ["base_url = unix:///var/run/docker.sock": "base_url = unix:///nonexistent/docker.sock",
                        "enable_cgroups = true": "enable_cgroups = false"]
        func roots(_ value: String) -> [String: String] { noEngine.merging(["[credentials]\n": "[credentials]\nbind_roots = \(value)\n"]) { $1 } }

        let unsafe = try await check(try TestConfig(replacing: roots("\(tree.path)/open/area/$USER")))
        #expect(unsafe.status == 78, "\(unsafe.stderr)")
        #expect(unsafe.stderr.contains("[credentials] bind_roots: \(tree.path)/open/area/$USER: \(open) is writable by group or others without the sticky bit"),
                "\(unsafe.stderr)")

        let userOwned = tree.mkdir("theirs")
        chown(userOwned, 4242, 4242)
        let owned = try await check(try TestConfig(replacing: roots("\(userOwned)")))
        #expect(owned.status == 78 && owned.stderr.contains("\(userOwned) is owned by uid 4242, not root"), "\(owned.stderr)")

        let missing = try await check(try TestConfig(replacing: roots("\(tree.path)/nope/$USER, \(open)")))
        #expect(missing.status == 69, "\(missing.stderr)")
        #expect(missing.stdout.contains("warning: ") && missing.stdout.contains("[credentials] bind_roots: \(tree.path)/nope/$USER: \(tree.path)/nope does not exist"),
                "\(missing.stdout)")
        // The root itself may be anyone-writable (like /tmp): only the way to it must not be.
        #expect(missing.stdout.contains("bind root: \(open)"), "\(missing.stdout)")
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
