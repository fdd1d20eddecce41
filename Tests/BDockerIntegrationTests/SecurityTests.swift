import BDAPI
import BDDocker
import BDClient
import BDCore
import BDTestSupport
import Foundation
import Logging
import Testing

/// Each attack of docs/SECURITY.md, run as a real non-root user (bdtest1, bdtest2) against the
/// real engine, the real `bdocker` binary and the daemon's unix socket.
@Suite("Security: attacks by job users", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine))
struct SecurityTests {
    typealias Node = ContainerCommandTests.Node

    /// Runs a shell command as the user (setpriv, like the job itself).
    static func asUser(_ user: PasswdEntry, _ script: String) async throws -> CommandResult {
        try await runCommand("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                                  "/bin/sh", "-c", script],
                             environment: ["HOME": user.home, "PATH": "/usr/bin:/bin"], directory: user.home)
    }

    /// A root-only directory holding a root-only secret, removed at the end.
    static func rootSecret() throws -> (dir: TempDir, file: String) {
        let dir = TempDir("bdocker-secret")
        chmod(dir.path, 0o700)
        return (dir, dir.write("secret", "TOPSECRET\n", mode: 0o600))
    }

    @Test func swappingABindSourceForASymlinkReachesNothingOfRoots() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let (secretDir, _) = try Self.rootSecret()
            let d = "\(user.home)/bdtest-swap-\(Int.random(in: 1000...9999))"
            _ = try await Self.asUser(user, "mkdir \(d) && echo mine > \(user.home)/bdtest-up.txt")
            defer {
                unlink(d)
                try? FileManager.default.removeItem(atPath: d)
                unlink("\(user.home)/bdtest-up.txt")
                unlink("\(user.home)/bdtest-got")
            }
            let run = try await node.bdocker(user, job, ["run", "-d", "-v", "\(d):/x", node.image, "sh", "-c", "ls /x; sleep 60"])
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64, "\(run.stderr)")
            // The user moves the bound directory away and puts a symlink to root's directory in
            // its place (after an rmdir instead, the mount holds a deleted directory: the engine
            // then mounts nothing at all, as a second container below shows).
            let swap = try await Self.asUser(user, "mv \(d) \(d).old && ln -s \(secretDir.path) \(d)")
            defer { try? FileManager.default.removeItem(atPath: d + ".old") }
            try #require(swap.status == 0, "\(swap.stderr)")
            // cp out of the bind: root's secret is not there.
            let out = try await node.bdocker(user, job, ["cp", "\(id):/x/secret", "\(user.home)/bdtest-got"])
            #expect(out.status != 0)
            #expect(!FileManager.default.fileExists(atPath: "\(user.home)/bdtest-got"))
            // cp into the bind: root's directory gets nothing.
            let into = try await node.bdocker(user, job, ["cp", "\(user.home)/bdtest-up.txt", "\(id):/x/"])
            #expect(into.status == 0, "\(into.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: secretDir.path) == ["secret"])
            #expect(FileManager.default.fileExists(atPath: d + ".old/bdtest-up.txt"), "the copy did not reach the user's own directory")
            // Stop and start: the container still sees the user's own (old) directory.
            #expect(try await node.bdocker(user, job, ["stop", id]).status == 0)
            let started = try await node.bdocker(user, job, ["start", id])
            #expect(started.status == 0, "\(started.stderr)")
            var logs = try await node.bdocker(user, job, ["logs", id])
            _ = try await eventually {
                logs = try await node.bdocker(user, job, ["logs", id])
                return logs.stdout.contains("bdtest-up.txt")  // the restarted ls: the copy is there
            }
            #expect(!logs.stdout.contains("secret"), "the restarted container saw root's directory: \(logs.stdout)")
            #expect(logs.stdout.contains("bdtest-up.txt"), "\(logs.stdout)")
            // A bound directory removed outright: nothing of root's appears either.
            let e = "\(user.home)/bdtest-gone-\(Int.random(in: 1000...9999))"
            _ = try await Self.asUser(user, "mkdir \(e)")
            defer { unlink(e); rmdir(e) }
            let second = try await node.bdocker(user, job, ["run", "-d", "-v", "\(e):/y", node.image, "sleep", "60"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(second.count == 64)
            _ = try await Self.asUser(user, "rmdir \(e) && ln -s \(secretDir.path) \(e)")
            #expect(try await node.bdocker(user, job, ["cp", "\(second):/y/secret", "\(user.home)/bdtest-got"]).status != 0)
            #expect(!FileManager.default.fileExists(atPath: "\(user.home)/bdtest-got"))
            _ = try await node.bdocker(user, job, ["rm", "-f", second])
            // Removing the container removes its pinned mounts.
            #expect(try await node.bdocker(user, job, ["rm", "-f", id]).status == 0)
            let stages = (try? FileManager.default.contentsOfDirectory(atPath: node.config.settings.server.bindStaging)) ?? []
            #expect(stages.isEmpty, "stages left: \(stages)")
        }
    }

    @Test func bindSourcesThroughLinksOrNotTheUsersAreRefused() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser(), other = try testUser(1)
            let job = try await node.configure(user)
            let (secretDir, _) = try Self.rootSecret()
            let link = "\(user.home)/bdtest-link-\(Int.random(in: 1000...9999))"
            _ = try await Self.asUser(user, "ln -s \(secretDir.path) \(link)")
            defer { unlink(link) }
            let rootOwned = "\(user.home)/bdtest-rootdir-\(Int.random(in: 1000...9999))"
            mkdir(rootOwned, 0o755)
            defer { rmdir(rootOwned) }
            for (source, reason) in [(link, "symbolic link"), (link + "/x", "symbolic link"), (rootOwned, "not owned by"),
                                     (other.home, "outside your HOME"), (secretDir.path, "outside your HOME")] {
                let r = try await node.bdocker(user, job, ["run", "-v", "\(source):/x", node.image, "ls", "/x"])
                #expect(r.status != 0 && r.stderr.contains(reason), "\(source): \(r.stderr)")
                #expect(!r.stdout.contains("secret"))
            }
        }
    }

    @Test func copiedFilesArriveAsTheUsersWithoutSetuidBits() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let dir = node.userDir(user, "suid")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let made = try await Self.asUser(user, "cp /bin/busybox-static \(dir)/bb 2>/dev/null || cp /bin/busybox \(dir)/bb; chmod 6755 \(dir)/bb")
            try #require(made.status == 0, "\(made.stderr)")
            let id = try await node.bdocker(user, job, ["run", "-d", "-v", "\(dir):/h", node.image, "sleep", "60"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64)
            // Into a directory the user's files show up in (the bind), under a new name.
            let r = try await node.bdocker(user, job, ["cp", "\(dir)/bb", "\(id):/h/copied"])
            #expect(r.status == 0, "\(r.stderr)")
            var st = stat()
            #expect(stat("\(dir)/copied", &st) == 0)
            #expect(Int(st.st_uid) == user.uid && Int(st.st_gid) == user.gid)
            #expect(st.st_mode & (S_ISUID | S_ISGID | S_ISVTX) == 0, "mode \(String(st.st_mode, radix: 8))")
        }
    }

    @Test func anotherUsersTokenCannotAttach() async throws {
        try await ContainerCommandTests().withNode { node in
            let ann = try testUser(0), bob = try testUser(1)
            let job = try await node.configure(ann)
            let token = try String(contentsOfFile: "\(ann.home)/.bdocker_token_\(job)", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // Bob's client with ann's token: refused before anything is created or attached.
            let r = try await runCommand("/usr/bin/setpriv", ["--reuid=\(bob.uid)", "--regid=\(bob.gid)", "--init-groups", "--",
                                                              Repo.binDir + "/bdocker", "run", "-H", node.server.endpoint, "-i",
                                                              node.image, "cat"],
                                         environment: ["BDOCKER_TOKEN": token, "PATH": "/usr/bin:/bin", "HOME": bob.home],
                                         input: Data("secret input\n".utf8))
            #expect(r.status == 125 && r.stderr.contains("not valid for uid \(bob.uid)") && r.stdout.isEmpty, "\(r.status) \(r.stderr)")
            // The same by hand: a framed body whose request frame carries ann's token, and one
            // that sends stdin before any request.
            let dir = TempDir("bdocker-attach")
            chmod(dir.path, 0o755)
            let request = try JSONEncoder().encode(RunRequest(token: token, imageID: node.image, script: ["cat"], detach: false,
                                                              workingDir: nil, volumes: [], interactive: true))
            let framed = dir.file("framed")
            try Data(StreamFrames.encode(.request, Array(request)) + StreamFrames.encode(.stdin, Array("x\n".utf8))).write(to: URL(fileURLWithPath: framed))
            let stdinFirst = dir.file("stdin-first")
            try Data(StreamFrames.encode(.stdin, Array("x\n".utf8))).write(to: URL(fileURLWithPath: stdinFirst))
            chmod(framed, 0o644)
            chmod(stdinFirst, 0o644)
            for (file, expected) in [(framed, "\"status_code\":401"), (stdinFirst, "\"status_code\":400")] {
                let raw = try await Self.asUser(bob, """
                    curl -s --unix-socket \(node.config.socketPath) -X PUT -H 'Content-Type: \(StreamFrames.contentType)' \
                      --data-binary @\(file) http://bdockerd/run
                    """)
                #expect(raw.stdout.contains(expected), "\(file): \(raw.stdout) \(raw.stderr)")
            }
            let engine = try await TestEngine.connect().0
            #expect(try await engine.list(all: true, labelFilter: ["bdocker.job": job]).isEmpty, "a container was created for ann's job")
        }
    }

    @Test func anotherUsersTokenIsUseless() async throws {
        try await ContainerCommandTests().withNode { node in
            let ann = try testUser(0), bob = try testUser(1)
            let job = try await node.configure(ann)
            let token = try String(contentsOfFile: "\(ann.home)/.bdocker_token_\(job)", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            // Bob holds a copy of ann's token: every call is refused for his uid.
            let r = try await runCommand("/usr/bin/setpriv", ["--reuid=\(bob.uid)", "--regid=\(bob.gid)", "--init-groups", "--",
                                                              Repo.binDir + "/bdocker", "ps", "-H", node.server.endpoint],
                                         environment: ["BDOCKER_TOKEN": token, "PATH": "/usr/bin:/bin", "HOME": bob.home])
            #expect(r.status != 0 && r.stderr.contains("not valid for uid \(bob.uid)"), "\(r.stderr)")
            // Ann's own, through BDOCKER_TOKEN rather than argv, works.
            let own = try await runCommand("/usr/bin/setpriv", ["--reuid=\(ann.uid)", "--regid=\(ann.gid)", "--init-groups", "--",
                                                                Repo.binDir + "/bdocker", "ps", "-H", node.server.endpoint],
                                           environment: ["BDOCKER_TOKEN": token, "PATH": "/usr/bin:/bin", "HOME": ann.home])
            #expect(own.status == 0, "\(own.stderr)")
            // And no user can configure or clean, with or without any token.
            let configure = try await Self.asUser(bob, "JOB_ID=777 USER=\(bob.name) \(Repo.binDir)/bdocker configure -H \(node.server.endpoint)")
            #expect(configure.status != 0)
            let raw = try await Self.asUser(bob, """
                curl -s --unix-socket \(node.config.socketPath) -X DELETE -H 'Content-Type: application/json' \
                  -d '{"admin_token":"\(node.config.adminToken)","job":{"id":"\(job)"}}' http://bdockerd/clean
                """)
            #expect(raw.stdout.contains("\"status_code\":403"), "\(raw.stdout)")
            #expect(try await node.bdocker(ann, job, ["ps"]).status == 0, "bob's clean went through")
        }
    }

    @Test func theEpilogCleansTheJobWhateverTheTokenFileSays() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let a = try await node.configure(user), b = try await node.configure(user)
            let fileA = "\(user.home)/.bdocker_token_\(a)", fileB = "\(user.home)/.bdocker_token_\(b)"
            let tokenA = try String(contentsOfFile: fileA, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let id = try await node.bdocker(user, a, ["run", "-d", node.image, "sleep", "120"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64)
            // The user hides A's token file (keeping a copy) and plants B's token in its place.
            let swap = try await Self.asUser(user, "cp \(fileA) \(fileA).kept && rm -f \(fileA) && cp \(fileB) \(fileA)")
            try #require(swap.status == 0, "\(swap.stderr)")
            defer { unlink(fileA + ".kept") }
            let cleaned = try await node.clean(user, a)
            #expect(cleaned.status == 0, "\(cleaned.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fileA))
            // A is cleaned: its kept token is dead and its container gone; B is untouched.
            let kept = try await runCommand("/usr/bin/setpriv", ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                                                 Repo.binDir + "/bdocker", "ps", "-H", node.server.endpoint],
                                            environment: ["BDOCKER_TOKEN": tokenA, "PATH": "/usr/bin:/bin", "HOME": user.home])
            #expect(kept.status != 0 && kept.stderr.contains("not valid"), "\(kept.stderr)")
            let env = TestEnvironment.load()
            let left = try await runCommand("/usr/bin/docker", ["-H", env["BDOCKER_TEST_DOCKER_URL"] ?? "", "ps", "-aq",
                                                                "--filter", "label=bdocker.job=\(a)"])
            #expect(left.stdout.isEmpty, "A's container outlived its job: \(left.stdout)")
            #expect(try await node.bdocker(user, b, ["ps"]).status == 0)
            // With A's token file simply gone, a clean still finds the job (here: already clean).
            let again = try await node.clean(user, a)
            #expect(again.stderr.contains("not configured"), "\(again.stderr)")
        }
    }

    @Test func aSquatterOnTheOldTCPPortReceivesNothing() async throws {
        let squatter = try testUser(1), user = try testUser()
        let port = Int.random(in: 20_000...60_000)
        let config = try TestConfig(replacing: ["port = 5000": "port = \(port)"])
        // Bob listens where the admin calls used to go, and prints whatever arrives.
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        listener.arguments = ["--reuid=\(squatter.uid)", "--regid=\(squatter.gid)", "--init-groups", "--", "/usr/bin/python3", "-c", """
            import socket, sys
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen(16); s.settimeout(6)
            print("listening", flush=True)
            got = b""
            try:
                while True:
                    c, _ = s.accept(); c.settimeout(2)
                    try: got += c.recv(65536)
                    except Exception: pass
            except socket.timeout:
                pass
            sys.stdout.write("received %d bytes %s" % (len(got), got[:200]))
            """]
        let out = Pipe()
        listener.standardOutput = out
        try listener.run()
        defer { if listener.isRunning { listener.terminate() } }
        try await Task.sleep(for: .milliseconds(500))
        // The daemon is down; root's prolog and epilog run as they would.
        let job = "\(Int.random(in: 100_000...999_999))"
        let env = ["JOB_ID": job, "USER": user.name, "PATH": "/usr/bin:/bin"]
        let configure = try await runCommand(Repo.binDir + "/bdocker", ["configure", "--config", config.configPath], environment: env)
        let clean = try await runCommand(Repo.binDir + "/bdocker", ["clean", "--config", config.configPath], environment: env)
        #expect(configure.status != 0 && configure.stderr.contains("cannot reach bdockerd"), "\(configure.stderr)")
        #expect(clean.status != 0 && clean.stderr.contains("cannot reach bdockerd"), "\(clean.stderr)")
        listener.waitUntilExit()
        let heard = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(heard.contains("received 0 bytes"), "\(heard)")
        #expect(!heard.contains(config.adminToken))
    }

    @Test func slowConnectionsOfOneUserDoNotStarveAnother() async throws {
        try await ContainerCommandTests().withNode { node in
            let attacker = try testUser(1), user = try testUser()
            let job = try await node.configure(user)
            // Bob opens 1,500 connections, dribbles a request head's first byte on each and holds
            // them until told to stop (his stdin closes) or 120 s pass; then he counts those the
            // daemon has not closed. The daemon keeps his first 64 until its idle timeout (30 s)
            // and refuses the rest. Ann must be served while he still holds those: had she waited
            // for the timeout to free the daemon, none would be left. No time limit in the test,
            // only the order of events.
            let flood = Process()
            flood.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            flood.arguments = ["--reuid=\(attacker.uid)", "--regid=\(attacker.gid)", "--init-groups", "--", "/usr/bin/python3", "-c", """
                import socket, select, sys, resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
                conns = []
                for i in range(1500):
                    try:
                        c = socket.socket(socket.AF_UNIX); c.connect("\(node.config.socketPath)"); c.send(b"G"); conns.append(c)
                    except OSError:
                        pass
                print("open", len(conns), flush=True)
                select.select([sys.stdin], [], [], 120)
                held = 0
                for c in conns:
                    c.setblocking(False)
                    try:
                        c.recv(1)
                    except BlockingIOError:
                        held += 1
                    except OSError:
                        pass
                print("held", held, flush=True)
                """]
            let control = Pipe(), out = Pipe()
            flood.standardInput = control
            flood.standardOutput = out
            flood.standardError = FileHandle.nullDevice
            try flood.run()
            defer {
                try? control.fileHandleForWriting.close()
                flood.waitUntilExit()
            }
            let output = PipeOutput(out)
            // Opening 1,500 connections takes a while on a loaded machine; 120 s guard a hang only.
            #expect(try await eventually(within: .seconds(120)) { output.text.contains("\n") })
            let opened = output.text
            #expect((Self.number(after: "open", in: opened) ?? 0) >= 100, "bob's flood opened too few connections to be a test: \(opened)")
            let r = try await node.bdocker(user, job, ["ps"])
            #expect(r.status == 0, "\(r.stderr)")
            try control.fileHandleForWriting.close()
            let rest = await output.all()
            #expect((Self.number(after: "held", in: rest) ?? 0) >= 1, "ann's ps returned only once the daemon had dropped bob's connections: \(rest)")
        }
    }

    /// The number after `word` in a line "word N" of `text`.
    static func number(after word: String, in text: String) -> Int? {
        text.split(separator: "\n").lazy.compactMap { line -> Int? in
            let parts = line.split(separator: " ")
            return parts.count == 2 && parts[0] == word ? Int(parts[1]) : nil
        }.first
    }

    @Test func anAbsurdLimitInTheSpoolDoesNotTakeTheDaemonDown() async throws {
        let user = try testUser()
        let config = try TestConfig()
        let job = try BatchIntegrationTests.FakeSGEJob(user: user, limits: ["h_vmem": "99999999999999999999",
                                                                           "h_cpu": "99999999999999999999999:00:00",
                                                                           "submission_time": "1e400"])
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Repo.binDir + "/bdockerd")
        daemon.arguments = ["--config", config.configPath]
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
        let client = DaemonClient(endpoint: config.endpoint)
        for _ in 0..<100 {
            if (try? await client.call(.GET, "/status", as: StatusResult.self)) != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (status, data) = try await client.raw(.POST, "/configuration", body: ConfigureRequest(
            userCredentials: UserCredentials(user: user.name, uid: user.uid, gid: user.gid, home: user.home,
                                             job: JobInfo(id: job.id, spool: job.spool.path))))
        // Either taken as unlimited or refused with a clear message; never a crash.
        #expect([201, 400].contains(status), "\(status) \(String(decoding: data, as: UTF8.self))")
        #expect(daemon.isRunning)
        #expect((try? await client.call(.GET, "/status", as: StatusResult.self)) != nil, "the daemon died")
        if status == 201 {
            let token = try JSONDecoder().decode(Envelope<String>.self, from: data).results
            _ = try await client.raw(.DELETE, "/clean", body: CleanRequest(job: JobInfo(id: job.id), token: token))
        }
    }
}
