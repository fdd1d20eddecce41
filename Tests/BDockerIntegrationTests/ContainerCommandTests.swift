import BDAPI
import BDClient
import BDCore
import BDTestSupport
import Foundation
import Logging
import Testing

/// The job-side commands end to end: the real `bdocker` binary run as real non-root users,
/// an in-process working-node daemon, the test environment's Docker engine and registry.
@Suite("Container commands", .requires(.root, .cgroupsV1, .testUsers, .dockerEngine))
struct ContainerCommandTests {
    /// One in-process daemon on the test engine, and the jobs a test configured (cleaned at the end).
    final class Node: @unchecked Sendable {
        // @unchecked: used by one test at a time; `jobs` only grows from that test's task.
        let config: TestConfig
        let image: String
        let server: RunningDaemon
        var jobs: [(user: PasswdEntry, job: String)] = []

        init(config: TestConfig, image: String, server: RunningDaemon) {
            self.config = config
            self.image = image
            self.server = server
        }

        /// Configures a new job for `user` as the prolog would.
        func configure(_ user: PasswdEntry) async throws -> String {
            let job = "\(Int.random(in: 100_000...999_999))"
            let r = try await runCommand(Repo.binDir + "/bdocker", ["configure", "--config", config.configPath, "-H", server.endpoint],
                                         environment: ["JOB_ID": job, "USER": user.name, "PATH": "/usr/bin:/bin"])
            try #require(r.status == 0, "configure: \(r.stderr)")
            jobs.append((user, job))
            return job
        }

        /// The epilog's clean.
        func clean(_ user: PasswdEntry, _ job: String) async throws -> CommandResult {
            jobs.removeAll { $0.job == job }
            return try await runCommand(Repo.binDir + "/bdocker", ["clean", "--config", config.configPath, "-H", server.endpoint],
                                        environment: ["JOB_ID": job, "USER": user.name, "PATH": "/usr/bin:/bin"])
        }

        /// Runs `bdocker ARGS` as the user inside the job, from the user's HOME.
        func bdocker(_ user: PasswdEntry, _ job: String, _ args: [String], input: Data? = nil) async throws -> CommandResult {
            try await runCommand("/usr/bin/setpriv",
                                 ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", Repo.binDir + "/bdocker"]
                                     // Options before the image: everything after it is the container's command.
                                     + [args[0], "-H", server.endpoint] + args.dropFirst(),
                                 environment: ["JOB_ID": job, "HOME": user.home, "PATH": "/usr/bin:/bin"], directory: user.home,
                                 input: input)
        }

        /// A fresh directory in the user's HOME, owned by the user, removed at the end.
        func userDir(_ user: PasswdEntry, _ name: String) -> String {
            let path = "\(user.home)/bdtest-\(name)-\(Int.random(in: 1000...9999))"
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            chown(path, uid_t(user.uid), gid_t(user.gid))
            return path
        }

    }

    /// Runs `body` against a fresh daemon, then cleans every job it configured and stops.
    /// `extra` replaces text of the sample configuration, as `TestConfig` does.
    func withNode(replacing extra: [String: String] = [:], idleTimeout: Duration = .seconds(30),
                  _ body: (Node) async throws -> Void) async throws {
        try #require(geteuid() == 0, "these tests run as root")
        let env = TestEnvironment.load()
        let config = try TestConfig(replacing: extra.merging(["base_url = unix:///var/run/docker.sock":
            "base_url = \(env["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock")"]) { $1 })
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let node = Node(config: config, image: env["BDOCKER_TEST_IMAGE"] ?? "127.0.0.1:5055/busybox:latest",
                        server: try await RunningDaemon.start(router: try daemon.router(), socket: config.socketPath,
                                                              idleTimeout: idleTimeout))
        var failure: (any Error)?
        do { try await body(node) } catch { failure = error }
        for (user, job) in node.jobs {
            _ = try? await node.clean(user, job)
        }
        await node.server.stop()
        if let failure { throw failure }
    }

    @Test func pullRunAttachedAndDetached() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let pulled = try await node.bdocker(user, job, ["pull", node.image])
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(pulled.stdout.contains("pulled \(node.image)"))

        // ps of a job without containers answers from memory; a container recorded later
        // must show at once (the memory forgets the job when a container is recorded).
        let empty = try await node.bdocker(user, job, ["ps", "-a", "-q"])
        #expect(empty.status == 0 && empty.stdout.isEmpty, "\(empty.stdout)")
        #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)

        let attached = try await node.bdocker(user, job, ["run", node.image, "sh", "-c", "echo hi; echo oops >&2; exit 3"])
        #expect(attached.status == 3)
        #expect(attached.stdout == "hi\n")
        #expect(attached.stderr == "oops\n")

        let detached = try await node.bdocker(user, job, ["run", "-d", node.image, "sleep", "30"])
        #expect(detached.status == 0)
        let id = detached.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 64)
        let ps = try await node.bdocker(user, job, ["ps"])
        #expect(ps.stdout.hasPrefix("CONTAINER ID   IMAGE"))
        #expect(ps.stdout.contains(String(id.prefix(12))))
        #expect(ps.stdout.contains("\"sleep 30\""))
        let all = try await node.bdocker(user, job, ["ps", "-a", "-q"])
        #expect(all.stdout.split(separator: "\n").count == 2)
        let inspect = try await node.bdocker(user, job, ["inspect", String(id.prefix(8))])
        #expect(inspect.status == 0 && inspect.stdout.contains("\"User\" : \"\(user.uid):\(user.gid)\""), "\(inspect.stdout.prefix(200))")
        #expect(inspect.stdout.contains("no-new-privileges"))
        #expect(try await node.bdocker(user, job, ["stop", String(id.prefix(8))]).status == 0)
        #expect(try await node.bdocker(user, job, ["start", String(id.prefix(8))]).status == 0)
        let rm = try await node.bdocker(user, job, ["rm", "-f", String(id.prefix(8)), "nosuchid"])
        #expect(rm.status == 1)
        #expect(rm.stdout.contains(String(id.prefix(8))))
        #expect(rm.stderr.contains("nosuchid: no such container"))
        let missing = try await node.bdocker(user, job, ["pull", "127.0.0.1:5055/busybox:nope"])
        #expect(missing.status != 0 && missing.stderr.contains("not found"), "\(missing.stderr)")

        // run's own failures exit as docker's, apart from any exit code of a container:
        // 127 command not found, 126 not executable, 125 anything else before it ran.
        let notFound = try await node.bdocker(user, job, ["run", node.image, "nosuchcommand"])
        #expect(notFound.status == 127, "\(notFound.status): \(notFound.stderr)")
        let notExecutable = try await node.bdocker(user, job, ["run", node.image, "/etc/passwd"])
        #expect(notExecutable.status == 126, "\(notExecutable.status): \(notExecutable.stderr)")
        let noImage = try await node.bdocker(user, job, ["run", "127.0.0.1:5055/busybox:nope", "true"])
        #expect(noImage.status == 125, "\(noImage.status): \(noImage.stderr)")
        }
    }

    @Test func workdirAndTwoBindsWriteUserOwnedFiles() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let a = node.userDir(user, "a"), b = node.userDir(user, "b")
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        let r = try await node.bdocker(user, job, ["run", "-w", "/a", "-v", "\(a):/a", "-v", "\(b):/b:ro", node.image,
                                        "sh", "-c", "pwd; echo data > out.txt; touch /b/x 2>/dev/null && echo wrote-ro || echo ro-ok"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "/a\nro-ok\n")
        var st = stat()
        #expect(stat(a + "/out.txt", &st) == 0)
        #expect(Int(st.st_uid) == user.uid && Int(st.st_gid) == user.gid)
        #expect(try String(contentsOfFile: a + "/out.txt", encoding: .utf8) == "data\n")
        }
    }

    @Test func bindEscapesAreRefused() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let sibling = user.home + "2"  // /home/bdtest12: shares HOME's name as a prefix
        try FileManager.default.createDirectory(atPath: sibling, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: sibling) }
        let link = "\(user.home)/bdtest-etc-link"
        unlink(link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc")
        defer { unlink(link) }
        let refusals = ["/etc": "outside your HOME", "\(user.home)/../\(try testUser(1).name)": "may not contain '..'",
                        link: "symbolic link", sibling: "outside your HOME"]
        for (host, reason) in refusals {
            let r = try await node.bdocker(user, job, ["run", "-v", "\(host):/x", node.image, "ls", "/x"])
            #expect(r.status != 0, "\(host) was mounted")
            #expect(r.stderr.contains(reason), "\(host): \(r.stderr)")
        }
        let relative = try await node.bdocker(user, job, ["run", "-v", "\(user.home):x", node.image, "true"])
        #expect(relative.status != 0 && relative.stderr.contains("absolute"))
        }
    }

    @Test func rootInContainerCannotPlantRootOrSetuidRootFiles() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let dir = node.userDir(user, "h")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await node.bdocker(user, job, ["run", "-v", "\(dir):/h", node.image, "sh", "-c",
                                        "id -u; touch /h/x; chmod u+s /h/x; chown 0:0 /h/x && echo chowned; cp /bin/busybox /h/bb; chmod 4755 /h/bb; true"])
        #expect(r.stdout.hasPrefix("\(user.uid)\n"), "the container ran as \(r.stdout) \(r.stderr)")
        #expect(!r.stdout.contains("chowned"))
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            var st = stat()
            #expect(lstat(dir + "/" + name, &st) == 0)
            #expect(st.st_uid != 0, "\(name) is root-owned")
            // A setuid bit on the user's own file grants nothing beyond the user's rights.
            if st.st_mode & S_ISUID != 0 { #expect(Int(st.st_uid) == user.uid) }
        }
        }
    }

    @Test func containersAreInvisibleToOtherUsers() async throws {
        try await withNode { node in
        let ann = try testUser(0), bob = try testUser(1)
        let annJob = try await node.configure(ann), bobJob = try await node.configure(bob)
        let id = try await node.bdocker(ann, annJob, ["run", "-d", node.image, "sleep", "30"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(id.count == 64)
        let bobDir = node.userDir(bob, "cp")
        defer { try? FileManager.default.removeItem(atPath: bobDir) }
        #expect(!(try await node.bdocker(bob, bobJob, ["ps", "-a"]).stdout.contains(String(id.prefix(12)))))
        for args in [["logs", id], ["inspect", id], ["stop", id], ["start", id], ["rm", "-f", id],
                     ["cp", "\(id):/etc/passwd", bobDir], ["inspect", String(id.prefix(6))]] {
            let r = try await node.bdocker(bob, bobJob, args)
            #expect(r.status != 0, "bob could \(args[0]) ann's container")
            #expect(r.stderr.contains("no such container"), "\(args[0]): \(r.stderr)")
        }
        // -a: on a slow machine the sleep may be over by now.
        #expect(try await node.bdocker(ann, annJob, ["ps", "-a", "-q"]).stdout.contains(String(id.prefix(12))))
        }
    }

    @Test func copyBothWaysAndSymlinkTricksFail() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let dir = node.userDir(user, "copy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id = try await node.bdocker(user, job, ["run", "-d", node.image, "sh", "-c", "mkdir -p /tmp/tree/sub; echo leaf > /tmp/tree/sub/f; sleep 30"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(id.count == 64)
        // The tree exists once the shell has made it.
        _ = try await eventually {
            try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/tree/sub/f", dir + "-probe"]).status == 0
        }
        try? FileManager.default.removeItem(atPath: dir + "-probe")
        // Container -> host: a directory, and a file under a new name.
        var r = try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/tree", dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try String(contentsOfFile: dir + "/tree/sub/f", encoding: .utf8) == "leaf\n")
        r = try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/tree/sub/f", dir + "/renamed"])
        #expect(r.status == 0, "\(r.stderr)")
        var st = stat()
        #expect(stat(dir + "/renamed", &st) == 0 && Int(st.st_uid) == user.uid)
        // Host -> container, then back to check the content.
        _ = FileManager.default.createFile(atPath: dir + "/up.txt", contents: Data("up\n".utf8))
        chown(dir + "/up.txt", uid_t(user.uid), gid_t(user.gid))
        #expect(try await node.bdocker(user, job, ["cp", dir + "/up.txt", "\(id.prefix(12)):/tmp/"]).status == 0)
        r = try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/up.txt", dir + "/back.txt"])
        #expect(r.status == 0 && (try? String(contentsOfFile: dir + "/back.txt", encoding: .utf8)) == "up\n", "\(r.stderr)")
        // Tricks: a symlink in HOME pointing out of it, as destination or source. The host side
        // is the user's own tar, so it gets only what the user could do anyway.
        let out = dir + "/to-etc"
        try FileManager.default.createSymbolicLink(atPath: out, withDestinationPath: "/etc")
        r = try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/up.txt", out])
        #expect(r.status != 0 && r.stderr.contains("Permission denied"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/up.txt"))
        let shadowLink = dir + "/shadow"
        try FileManager.default.createSymbolicLink(atPath: shadowLink, withDestinationPath: "/etc/shadow")
        r = try await node.bdocker(user, job, ["cp", shadowLink, "\(id.prefix(12)):/tmp/"])
        #expect(r.status == 0, "\(r.stderr)")
        // What arrived is the link itself, not root's file behind it.
        r = try await node.bdocker(user, job, ["cp", "\(id.prefix(12)):/tmp/shadow", dir + "/shadow-back"])
        var linkStat = stat()
        #expect(lstat(dir + "/shadow-back", &linkStat) == 0 && (linkStat.st_mode & S_IFMT) == S_IFLNK, "\(r.stderr)")
        // A root-only file inside HOME is read as the user: refused.
        _ = FileManager.default.createFile(atPath: dir + "/secret", contents: Data("s\n".utf8), attributes: [.posixPermissions: 0o600])
        r = try await node.bdocker(user, job, ["cp", dir + "/secret", "\(id.prefix(12)):/tmp/"])
        #expect(r.status != 0 && r.stderr.contains("Permission denied"), "\(r.stderr)")
        }
    }

    @Test func cleanRemovesEveryContainerOfTheJob() async throws {
        try await withNode { node in
        let user = try testUser()
        let job = try await node.configure(user)
        let running = try await node.bdocker(user, job, ["run", "-d", node.image, "sleep", "60"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await node.bdocker(user, job, ["run", node.image, "true"])
        let ids = try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.split(separator: "\n")
        #expect(ids.count == 2)
        let r = try await node.clean(user, job)
        #expect(r.status == 0, "\(r.stderr)")
        let env = TestEnvironment.load()
        let left = try await runCommand("/usr/bin/docker", ["-H", env["BDOCKER_TEST_DOCKER_URL"] ?? "", "ps", "-aq", "--no-trunc",
                                                      "--filter", "label=bdocker.job=\(job)"])
        #expect(left.stdout.isEmpty, "left behind: \(left.stdout)")
        #expect(!left.stdout.contains(running))
        }
    }

    /// The engine finishes a create even when the daemon that asked for it is killed meanwhile:
    /// such a container was never recorded for the job, only its labels name it. Clean removes
    /// it too, and leaves alone a container labelled for the same job but another user
    /// (tools/soak.sh found these left behind after kill -9 of the working daemon).
    @Test func cleanRemovesAContainerTheDaemonNeverRecorded() async throws {
        try await withNode { node in
        let user = try testUser(), other = try testUser(1)
        let job = try await node.configure(user)
        let url = TestEnvironment.load()["BDOCKER_TEST_DOCKER_URL"] ?? ""
        func create(_ owner: String) async throws -> String {
            let r = try await runCommand("/usr/bin/docker", ["-H", url, "create", "--label", "bdocker.job=\(job)",
                                                             "--label", "bdocker.user=\(owner)", node.image, "true"])
            try #require(r.status == 0, "docker create: \(r.stderr)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let unrecorded = try await create(user.name)
        let foreign = try await create(other.name)
        let r = try await node.clean(user, job)
        #expect(r.status == 0, "\(r.stderr)")
        let left = try await runCommand("/usr/bin/docker", ["-H", url, "ps", "-aq", "--no-trunc", "--filter", "label=bdocker.job=\(job)"])
        #expect(!left.stdout.contains(unrecorded), "the unrecorded container was left behind")
        #expect(left.stdout.contains(foreign), "another user's container was removed")
        _ = try? await runCommand("/usr/bin/docker", ["-H", url, "rm", "-f", foreign])
        }
    }

    /// `/metrics` and `/ready` of a working node with a real job and container: the counts are
    /// the job's, no label names the user or the job, and readiness names what is missing.
    @Test func nodeMetricsAndReadiness() async throws {
        try await withNode { node in
            let user = try testUser()
            let client = DaemonClient(endpoint: node.server.endpoint)
            func scrape() async throws -> PrometheusText {
                let (status, data) = try await client.raw(.GET, "/metrics")
                try #require(status == 200)
                return try PrometheusText.parse(String(decoding: data, as: UTF8.self))
            }
            let job = try await node.configure(user)
            let detached = try await node.bdocker(user, job, ["run", "-d", node.image, "sleep", "30"])
            try #require(detached.status == 0, "\(detached.stderr)")
            let running = try await scrape()
            #expect(running.value("bdocker_jobs_live") == 1)
            #expect(running.value("bdocker_configure_total", ["result": "ok"]) == 1)
            #expect(running.value("bdocker_configure_duration_seconds_count") == 1)
            // Other suites' containers run on the same engine: at least ours.
            #expect((running.value("bdocker_containers", ["state": "running"]) ?? 0) >= 1)
            for state in ["created", "running", "paused", "restarting", "removing", "exited", "dead"] {
                #expect(running.value("bdocker_containers", ["state": state]) != nil, "\(state)")
            }
            for value in running.labelValues {
                #expect(!value.contains(user.name) && !value.contains(job), "\(value)")
            }

            let cleaned = try await node.clean(user, job)
            #expect(cleaned.status == 0, "\(cleaned.stderr)")
            let after = try await scrape()
            #expect(after.value("bdocker_clean_total", ["result": "ok"]) == 1)
            #expect(after.value("bdocker_jobs_live") == 0)
            // The sample configuration's accounting daemon does not run here: the record waits.
            #expect(after.value("bdocker_outbox_records", ["state": "pending"]) == 1)
            #expect((after.value("bdocker_outbox_oldest_pending_age_seconds") ?? -1) >= 0)

            let (status, data) = try await client.raw(.GET, "/ready")
            #expect(status == 503)
            let ready = try JSONDecoder().decode(Envelope<ReadinessResult>.self, from: data).results
            #expect(!ready.ready)
            #expect(ready.checks.map(\.name) == ["database", "docker", "accounting_endpoint"])
            #expect(ready.checks.map(\.ok) == [true, true, false], "\(ready.checks)")
            #expect(ready.checks.last?.detail.contains("127.0.0.1:5001") == true, "\(ready.checks)")
            let (health, _) = try await client.raw(.GET, "/health")
            #expect(health == 200)
        }
    }
}
