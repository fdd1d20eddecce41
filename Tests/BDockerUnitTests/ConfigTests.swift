import BDBatch
import BDConfig
import BDTestSupport
import Foundation
import Testing

@Suite("Configuration")
struct ConfigTests {
    let dir = TempDir("bdocker-config")

    /// A complete working-node file; each case below breaks one thing.
    static let valid = """
        [resource]
        role = working

        [server]
        host = 127.0.0.1
        port = 5000
        logging = DEBUG

        [batch]
        controller = SGEWNController
        enable_cgroups = yes

        [credentials]
        controller = TokenController
        token_client_file = .bdocker_token

        [dockerAPI]
        base_url = unix:///var/run/docker.sock
        """

    func load(_ text: String) throws -> Settings {
        try SettingsLoader.load(path: dir.write("c.cfg", text))
    }

    func expectError(_ text: String, section: String?, key: String?, containing words: String) {
        let path = dir.file("c.cfg")
        do {
            _ = try load(text)
            Issue.record("expected a configuration error about \(section ?? "-") \(key ?? "-")")
        } catch let error as ConfigError {
            #expect(error.file == path)
            #expect(error.section == section)
            #expect(error.key == key)
            #expect(error.description.contains(path))
            if let section { #expect(error.description.contains("[\(section)]")) }
            if let key { #expect(error.description.contains(key)) }
            #expect(error.description.contains(words), "\(error.description)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func validFileLoads() throws {
        let s = try load(Self.valid)
        #expect(s.role == .working)
        #expect(s.server.port == 5000)
        #expect(s.server.logLevel == .debug)
        #expect(s.batch.enableCgroups)
        #expect(s.server.database == "/var/lib/bdocker/working.sqlite")
        #expect(s.credentials.adminTokenFile == "/etc/bdocker/admin_token")
        #expect(s.warnings.isEmpty)
    }

    @Test func shippedSamplesLoad() throws {
        let working = try SettingsLoader.load(path: Repo.path("etc/configure_bdocker.cfg"))
        #expect(working.role == .working)
        #expect(working.warnings.isEmpty, "\(working.warnings)")
        #expect(working.batch.accountingEndpoint == "http://127.0.0.1:5001")
        let accounting = try SettingsLoader.load(path: Repo.path("etc/configure_bdocker_accounting.cfg"))
        #expect(accounting.role == .accounting)
        #expect(accounting.server.port == 5001)
        #expect(accounting.batch.bdockerAccounting != nil)
        #expect(accounting.warnings.isEmpty, "\(accounting.warnings)")
    }

    @Test func logFormatAndMetricsPort() throws {
        let server = "logging = DEBUG\n"
        let s = try load(Self.valid.replacingOccurrences(of: server, with: server + "log_format = JSON\nmetrics_port = 9464\nmetrics_host = 0.0.0.0\n"))
        #expect(s.server.logFormat == .json)
        #expect(s.server.metricsPort == 9464 && s.server.metricsHost == "0.0.0.0")
        let defaults = try load(Self.valid)
        #expect(defaults.server.logFormat == .text && defaults.server.metricsPort == nil)
        #expect(try load(Self.valid.replacingOccurrences(of: server, with: server + "metrics_port = 0\n")).server.metricsPort == nil)
        expectError(Self.valid.replacingOccurrences(of: server, with: server + "log_format = yaml\n"),
                    section: "server", key: "log_format", containing: "'yaml' is not a log format; use text or json")
        expectError(Self.valid.replacingOccurrences(of: server, with: server + "metrics_port = 70000\n"),
                    section: "server", key: "metrics_port", containing: "70000")
        // A working node with listen_tcp already holds [server] port.
        expectError(Self.valid.replacingOccurrences(of: server, with: server + "listen_tcp = yes\nmetrics_port = 5000\n"),
                    section: "server", key: "metrics_port", containing: "is also [server] port")
    }

    @Test func missingFileIsNamed() {
        let path = dir.file("nope.cfg")
        #expect(throws: ConfigError(file: path, "configuration file not found")) {
            try SettingsLoader.load(path: path)
        }
    }

    @Test func missingSection() {
        expectError(Self.valid.replacingOccurrences(of: "[dockerAPI]\nbase_url = unix:///var/run/docker.sock", with: ""),
                    section: "dockerAPI", key: nil, containing: "section is missing")
    }

    @Test func missingKey() {
        expectError(Self.valid.replacingOccurrences(of: "controller = SGEWNController\n", with: ""),
                    section: "batch", key: "controller", containing: "key is missing")
        expectError(Self.valid.replacingOccurrences(of: "role = working\n", with: ""),
                    section: "resource", key: "role", containing: "key is missing")
    }

    @Test(arguments: [
        ("role = working", "role = worker", "resource", "role", "not a role"),
        ("port = 5000", "port = 0", "server", "port", "whole number from 1 to 65535"),
        ("port = 5000", "port = 70000", "server", "port", "whole number"),
        ("port = 5000", "port = http", "server", "port", "whole number"),
        ("enable_cgroups = yes", "enable_cgroups = maybe", "batch", "enable_cgroups", "not a boolean"),
        ("logging = DEBUG", "logging = LOUD", "server", "logging", "not a logging level"),
        ("base_url = unix:///var/run/docker.sock", "base_url = ftp://x", "dockerAPI", "base_url", "must start with"),
        ("token_client_file = .bdocker_token", "token_client_file = ../x", "credentials", "token_client_file", "not a path"),
        ("host = 127.0.0.1", "host =", "server", "host", "value is empty"),
    ])
    func badValueNamesSectionAndKey(_ from: String, _ to: String, _ section: String, _ key: String, _ words: String) {
        expectError(Self.valid.replacingOccurrences(of: from, with: to), section: section, key: key, containing: words)
    }

    @Test func booleanWords() throws {
        for (word, expected) in [("yes", true), ("no", false), ("true", true), ("FALSE", false)] {
            let s = try load(Self.valid.replacingOccurrences(of: "enable_cgroups = yes", with: "enable_cgroups = \(word)"))
            #expect(s.batch.enableCgroups == expected)
        }
    }

    @Test func timeoutAcceptsOldSpelling() throws {
        let s = try load(Self.valid.replacingOccurrences(of: "logging = DEBUG", with: "logging = DEBUG\ntime_out = 42"))
        #expect(s.server.timeout == 42)
        expectError(Self.valid.replacingOccurrences(of: "logging = DEBUG", with: "timeout = 1\ntime_out = 42"),
                    section: "server", key: "time_out", containing: "keep one")
    }

    @Test func yamlTokenStoreIsExplained() throws {
        let s = try load(Self.valid.replacingOccurrences(
            of: "controller = TokenController", with: "controller = TokenController\ntoken_store = /root/.bdocker_token_store.yml"))
        #expect(s.warnings.count == 1)
        let warning = try #require(s.warnings.first)
        #expect(warning.contains("token_store"))
        #expect(warning.contains("YAML token store is no longer used"))
        #expect(warning.contains("SQLite database"))
        #expect(warning.contains("admin_token_file"))
    }

    @Test func malformedLinesAreNamedWithLineNumber() {
        do {
            _ = try load("[resource]\nrole working\n")
            Issue.record("expected an error")
        } catch let error as ConfigError {
            #expect(error.line == 2)
            #expect(error.description.contains("c.cfg:2"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func accountingRoleNeedsItsFile() {
        let text = """
            [resource]
            role = accounting
            [server]
            port = 5001
            [batch]
            controller = SGEAccountingController
            """
        expectError(text, section: "batch", key: "bdocker_accounting", containing: "key is missing")
    }

    @Test func pathResolutionOrder() {
        #expect(SettingsLoader.resolvePath(explicit: "/a", environment: ["BDOCKER_CONF_FILE": "/b"]) == "/a")
        #expect(SettingsLoader.resolvePath(explicit: nil, environment: ["BDOCKER_CONF_FILE": "/b"]) == "/b")
        #expect(SettingsLoader.resolvePath(explicit: nil, environment: [:]) == "/etc/configure_bdocker.cfg")
    }

    @Test func unknownKeysWarnButLoad() throws {
        let s = try load(Self.valid.replacingOccurrences(of: "port = 5000", with: "port = 5000\nprot = 1"))
        #expect(s.warnings.contains { $0.contains("[server] prot is not a bdocker key") })
    }

    // MARK: [credentials] bind_roots

    func withBindRoots(_ value: String) -> String {
        Self.valid.replacingOccurrences(of: "token_client_file = .bdocker_token",
                                        with: "token_client_file = .bdocker_token\nbind_roots = \(value)")
    }

    @Test func bindRootsAreHomeOnlyWhenAbsent() throws {
        #expect(try load(Self.valid).credentials.bindRoots.isEmpty)
    }

    @Test func bindRootsParseAndFillInPerJob() throws {
        // Commas, spaces and continuation lines all separate; a repeated entry counts once.
        let s = try load(withBindRoots("/scratch/$USER, /tmp/${JOB_ID}.$TASK_ID.$QUEUE\n  /project/${USER}_data/ /shared //shared/"))
        let roots = s.credentials.bindRoots
        #expect(roots.map(\.template) == ["/scratch/$USER", "/tmp/${JOB_ID}.$TASK_ID.$QUEUE", "/project/${USER}_data/", "/shared"])
        #expect(roots.map(\.isPersonal) == [true, true, true, false])
        #expect(roots.map(\.fixedPath) == ["/scratch", "/tmp", "/project", "/shared"])

        let job = BindRoot.Values(user: "ann", uid: 1234, jobID: "77", taskID: nil, queue: "all.q")
        let scratch = try #require(roots[0].expand(job))
        #expect(scratch.path == "/scratch/ann")
        #expect(scratch.fixed == ["scratch"] && scratch.personal == ["ann"])
        // Grid Engine's TMPDIR: <tmpdir>/<job>.<task>.<queue>, task 1 for a job that is no array.
        #expect(roots[1].expand(job)?.path == "/tmp/77.1.all.q")
        #expect(roots[1].expand(BindRoot.Values(user: "ann", uid: 1234, jobID: "77", taskID: "5", queue: "all.q"))?.path == "/tmp/77.5.all.q")
        #expect(roots[2].expand(job)?.path == "/project/ann_data")
        let shared = try #require(roots[3].expand(job))
        #expect(shared.path == "/shared" && shared.personal.isEmpty && !shared.isPersonal)
        let uid = try BindRoot(parsing: "/scratch/by-uid/$UID/work")
        #expect(uid.expand(job)?.path == "/scratch/by-uid/1234/work")
        #expect(uid.expand(job)?.personal == ["1234", "work"], "components after a placeholder are the user's part of the root")
    }

    @Test func aBindRootWithoutAValueForThisJobIsLeftOut() throws {
        let root = try BindRoot(parsing: "/tmp/$JOB_ID.$TASK_ID.$QUEUE")
        #expect(root.expand(BindRoot.Values(user: "ann", uid: 1, jobID: "7", queue: nil)) == nil, "no queue known")
        // Values never come from the user, but a value that is not one path component is never used.
        let user = try BindRoot(parsing: "/scratch/$USER")
        for bad in ["a/b", "..", ".", ""] {
            #expect(user.expand(BindRoot.Values(user: bad, uid: 1, jobID: "7")) == nil, "\(bad)")
        }
        #expect(try BindRoot(parsing: "/scratch/x$USER").expand(BindRoot.Values(user: ".", uid: 1, jobID: "7"))?.path == "/scratch/x.")
    }

    @Test(arguments: [
        ("scratch/$USER", "must be an absolute path"),
        ("~/scratch", "must be an absolute path"),
        ("/scratch/../etc", "may not contain '..'"),
        ("/scratch/$USERNAME", "'$USERNAME' is not a placeholder; use $USER, $UID, $JOB_ID, $TASK_ID, $QUEUE"),
        ("/scratch/$user", "'$user' is not a placeholder"),
        ("/scratch/$HOME", "HOME is always allowed"),
        ("/scratch/${USER", "'${' without '}'"),
        ("/scratch/$", "'$' is not a placeholder"),
        ("/", "anywhere"),
        ("/scratch, /", "anywhere"),
        (",", "no directory given"),
    ])
    func badBindRootsNameSectionAndKey(_ value: String, _ words: String) {
        expectError(withBindRoots(value), section: "credentials", key: "bind_roots", containing: words)
    }

    @Test func anEmptyBindRootsIsAnError() {
        expectError(withBindRoots(""), section: "credentials", key: "bind_roots", containing: "value is empty")
    }
}
