import BDCore
@testable import BDDocker
import BDTestSupport
import Foundation
import Testing

/// docker's `run` options and the docker meanings of the short flags, driven through the real
/// `bdocker` binary as real non-root users against the real engine. One at a time: two of them
/// remove the run-pull test image (BDOCKER_TEST_RUN_PULL_IMAGE), which only this suite uses.
@Suite("Run options as in docker", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine))
struct RunOptionsTests {
    @Test func environmentNameAndEntrypoint() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser(), other = try testUser(1)
            let job = try await node.configure(user), otherJob = try await node.configure(other)
            let envFile = node.userDir(user, "env") + "/run.env"
            try "# a comment\n\nC=3\nD=from file\n".write(toFile: envFile, atomically: true, encoding: .utf8)
            let name = "calc-\(Int.random(in: 1000...9999))"
            // B is bare and not in the client's environment: docker leaves it out.
            let run = try await node.bdocker(user, job, [
                "run", "--name", name, "-e", "A=1", "-e", "B", "--env-file", envFile, "-e", "D=from flag",
                "--entrypoint", "sh", node.image, "-c", "echo A=$A B=${B-unset} C=$C D=$D; echo second"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout == "A=1 B=unset C=3 D=from flag\nsecond\n")

            // The name works wherever an id does, and only for its owner.
            let logs = try await node.bdocker(user, job, ["logs", name])
            #expect(logs.stdout == run.stdout, "\(logs.stderr)")
            let last = try await node.bdocker(user, job, ["logs", "--tail", "1", name])
            #expect(last.stdout == "second\n")
            // -t is docker's timestamps now, not the token.
            let stamped = try await node.bdocker(user, job, ["logs", "-t", "-n", "1", name])
            #expect(stamped.status == 0, "\(stamped.stderr)")
            #expect(stamped.stdout.hasPrefix("20") && stamped.stdout.hasSuffix(" second\n"), "\(stamped.stdout)")
            let foreign = try await node.bdocker(other, otherJob, ["logs", name])
            #expect(foreign.status == 1 && foreign.stderr.contains("no such container: \(name)"), "\(foreign.stderr)")
            #expect(try await node.bdocker(user, job, ["inspect", name]).stdout.contains("\"/\(name)\""))
            let rm = try await node.bdocker(user, job, ["rm", name])
            #expect(rm.status == 0, "\(rm.stderr)")
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)
        }
    }

    @Test func removeOnExitAttachedAndDetached() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // Attached: the exit code still arrives, and the container is gone after.
            let attached = try await node.bdocker(user, job, ["run", "--rm", node.image, "sh", "-c", "echo bye; exit 4"])
            #expect(attached.status == 4 && attached.stdout == "bye\n", "\(attached.stderr)")
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)
            // Detached: the engine removes it when it exits.
            let detached = try await node.bdocker(user, job, ["run", "-d", "--rm", node.image, "sleep", "1"])
            #expect(detached.status == 0, "\(detached.stderr)")
            #expect(try await eventually { try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty },
                    "the --rm -d container is still listed")
            // A kept one is still there: --rm is not the default.
            #expect(try await node.bdocker(user, job, ["run", node.image, "true"]).status == 0)
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.split(separator: "\n").count == 1)
        }
    }

    @Test func stopTakesDockersGracePeriod() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // sleep as pid 1 ignores SIGTERM: only the kill after the grace period stops it.
            let id = try await node.bdocker(user, job, ["run", "-d", node.image, "sleep", "300"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64)
            let started = ContinuousClock.now
            let stop = try await node.bdocker(user, job, ["stop", "-t", "1", String(id.prefix(12))])
            #expect(stop.status == 0, "\(stop.stderr)")
            // The default grace period is 10 s; a 1 s one must end well before that.
            #expect(ContinuousClock.now - started < .seconds(9))
            let state = try await node.bdocker(user, job, ["inspect", String(id.prefix(12))]).stdout
            #expect(state.contains("\"ExitCode\" : 137"), "\(state.prefix(400))")
            let bad = try await node.bdocker(user, job, ["stop", "-t", "5000", String(id.prefix(12))])
            #expect(bad.status == 1 && bad.stderr.contains("stop timeout must be 0 to 3600"), "\(bad.stderr)")
        }
    }

    @Test func badOptionsAreOneLineErrorsAndCreateNothing() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let cases: [([String], String)] = [
                (["-e", "=x"], "'=x' is not NAME=value"),
                (["--name", "bad name"], "invalid container name 'bad name'"),
                (["--env-file", "/nonexistent/run.env"], "--env-file /nonexistent/run.env: cannot read it"),
            ]
            for (options, message) in cases {
                let r = try await node.bdocker(user, job, ["run"] + options + [node.image, "true"])
                #expect(r.status == 125, "\(options): \(r.status) \(r.stderr)")
                #expect(r.stderr.contains(message) && r.stderr.split(separator: "\n").count == 1, "\(options): \(r.stderr)")
            }
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)
            // --token still names the token; a wrong one is refused.
            let wrong = try await node.bdocker(user, job, ["ps", "--token", "not-a-token"])
            #expect(wrong.status == 1 && wrong.stderr.contains("token"), "\(wrong.stderr)")
        }
    }

    @Test func killSendsTheSignalAndWaitGivesTheExitCode() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser(), other = try testUser(1)
            let job = try await node.configure(user), otherJob = try await node.configure(other)
            // The shell exits with 42 on USR1 and waits otherwise.
            let name = "waiter-\(Int.random(in: 1000...9999))"
            let run = try await node.bdocker(user, job, ["run", "-d", "--name", name, node.image, "sh", "-c",
                                                           "trap 'exit 42' USR1; echo ready; while :; do sleep 1; done"])
            #expect(run.status == 0, "\(run.stderr)")
            // Somebody else's job can neither signal nor wait on it.
            let foreign = try await node.bdocker(other, otherJob, ["kill", name])
            #expect(foreign.status == 1 && foreign.stderr.contains("no such container"), "\(foreign.stderr)")
            let bad = try await node.bdocker(user, job, ["kill", "-s", "NOPE", name])
            #expect(bad.status == 1 && bad.stderr.contains("unknown signal 'NOPE'"), "\(bad.stderr)")
            // The trap is set once the shell says so.
            #expect(try await eventually { try await node.bdocker(user, job, ["logs", name]).stdout == "ready\n" })
            let waiter = Task { try await node.bdocker(user, job, ["wait", name]) }
            let kill = try await node.bdocker(user, job, ["kill", "-s", "SIGUSR1", name])
            #expect(kill.status == 0 && kill.stdout == "\(name)\n", "\(kill.stderr)")
            let waited = try await waiter.value
            #expect(waited.status == 0 && waited.stdout == "42\n", "\(waited.stdout) \(waited.stderr)")
            // A stopped container's wait answers at once.
            #expect(try await node.bdocker(user, job, ["wait", name]).stdout == "42\n")
        }
    }

    @Test func aSignalToAnAttachedRunReachesTheContainer() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let name = "proxied-\(Int.random(in: 1000...9999))"
            // As the batch system's qdel would: TERM to the client, which the container traps.
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            client.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", Repo.binDir + "/bdocker",
                                "run", "-H", node.server.endpoint, "--name", name, node.image, "sh", "-c",
                                "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 1; done"]
            client.environment = ["JOB_ID": job, "HOME": user.home, "PATH": "/usr/bin:/bin"]
            let out = Pipe()
            client.standardOutput = out
            client.standardError = FileHandle.nullDevice
            try client.run()
            defer { if client.isRunning { kill(client.processIdentifier, SIGKILL) } }
            let output = PipeOutput(out)
            // "ready" in the client's own output, not the container's log: the stream gives the
            // client the container's id before any output, so from here on it knows whom to
            // signal (before that, a signal ends the client, as docker's does).
            #expect(try await eventually { output.text == "ready\n" }, "\(output.text)")
            kill(client.processIdentifier, SIGTERM)
            #expect(try await eventually(within: .seconds(60)) { !client.isRunning }, "the client did not end after the container did")
            client.waitUntilExit()
            let printed = await output.all()
            #expect(client.terminationReason == .exit && client.terminationStatus == 7, "\(client.terminationReason) \(client.terminationStatus)")
            #expect(printed == "ready\ngot TERM\n", "\(printed)")
            // Without the proxy the client dies of the signal and the container runs on.
            let plain = Process()
            plain.executableURL = client.executableURL
            plain.arguments = client.arguments.map { args in
                var a = args
                a.insert("--sig-proxy=false", at: a.firstIndex(of: "--name")!)
                a[a.firstIndex(of: name)!] = name + "-plain"
                return a
            }
            plain.environment = client.environment
            plain.standardOutput = FileHandle.nullDevice
            plain.standardError = FileHandle.nullDevice
            try plain.run()
            defer { if plain.isRunning { kill(plain.processIdentifier, SIGKILL) } }
            #expect(try await eventually { try await node.bdocker(user, job, ["logs", name + "-plain"]).stdout == "ready\n" })
            kill(plain.processIdentifier, SIGTERM)
            plain.waitUntilExit()
            #expect(plain.terminationReason == .uncaughtSignal && plain.terminationStatus == SIGTERM)
            let state = try await node.bdocker(user, job, ["inspect", name + "-plain"]).stdout
            #expect(state.contains("\"Running\" : true"), "\(state.prefix(300))")
        }
    }

    @Test(.requires(.registry)) func runPullsAnImageTheNodeDoesNotHave() async throws {
        // This image is this test's alone (tools/test-env.sh pushes it), so removing it from
        // the engine disturbs no other test.
        let image = try #require(TestEnvironment.values["BDOCKER_TEST_RUN_PULL_IMAGE"])
        let engine = try await TestEngine.connect().0
        let removal = await failure { () async throws(BDockerError) in try await engine.removeImage(image, force: true) }
        if let removal, removal.httpStatus != 404 { throw removal }
        #expect(try await engine.imageExists(image) == false)
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let run = try await node.bdocker(user, job, ["run", "--rm", image, "cat", "/etc/bdocker-run-pull-test"])
            #expect(run.status == 0 && run.stdout == "bdocker run-pull test image\n", "\(run.stdout) \(run.stderr)")
            // A name no registry has is still docker's 125 with the engine's reason.
            let missing = try await node.bdocker(user, job, ["run", "\(image)-no-such-tag", "true"])
            #expect(missing.status == 125 && missing.stderr.contains("not found"), "\(missing.stderr)")
        }
    }

    @Test func psFormatAndInspectAsAList() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let name = "fmt-\(Int.random(in: 1000...9999))"
            let id = try await node.bdocker(user, job, ["run", "-d", "--name", name, node.image, "sleep", "60"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64)
            let plain = try await node.bdocker(user, job, ["ps", "--format", "{{.ID}}:{{.Names}}\\t{{.Command}}"])
            #expect(plain.stdout == "\(id.prefix(12)):\(name)\t\"sleep 60\"\n", "\(plain.stdout) \(plain.stderr)")
            let table = try await node.bdocker(user, job, ["ps", "--format", "table {{.Names}}\\t{{.Status}}"])
            let lines = table.stdout.split(separator: "\n")
            #expect(lines.count == 2 && lines[0].hasPrefix("NAMES") && lines[0].contains("STATUS") && lines[1].hasPrefix(name), "\(table.stdout)")
            let json = try await node.bdocker(user, job, ["ps", "--format", "json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: String]
            #expect(object?["Names"] == name && object?["ID"] == String(id.prefix(12)), "\(json.stdout)")
            let bad = try await node.bdocker(user, job, ["ps", "--format", "{{.Nope}}"])
            #expect(bad.status == 1 && bad.stderr.contains("unknown field '.Nope'"), "\(bad.stderr)")

            // inspect: a JSON list, like docker's; a missing one is reported and makes it exit 1.
            let both = try await node.bdocker(user, job, ["inspect", name, String(id.prefix(6))])
            let list = try JSONSerialization.jsonObject(with: Data(both.stdout.utf8)) as? [[String: Any]]
            #expect(both.status == 0 && list?.count == 2 && list?.allSatisfy { $0["Id"] as? String == id } == true, "\(both.stderr)")
            let partly = try await node.bdocker(user, job, ["inspect", name, "nosuch"])
            #expect(partly.status == 1 && partly.stderr.contains("nosuch: no such container"), "\(partly.stderr)")
            #expect((try JSONSerialization.jsonObject(with: Data(partly.stdout.utf8)) as? [Any])?.count == 1)
        }
    }

    @Test func infoSummarisesTheJobAndTheEngine() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            #expect(try await node.bdocker(user, job, ["run", "-d", node.image, "sleep", "60"]).status == 0)
            #expect(try await node.bdocker(user, job, ["run", node.image, "true"]).status == 0)
            let json = try await node.bdocker(user, job, ["info", "--format", "json"])
            #expect(json.status == 0, "\(json.stderr)")
            let summary = try JSONDecoder().decode(JobSummary.self, from: Data(json.stdout.utf8))
            #expect(summary.job == job && summary.user == user.name && summary.uid == user.uid)
            #expect(summary.containers == 2 && summary.running == 1)
            #expect(summary.limits.maxContainers == 64)
            #expect((summary.usage.samples == 0) == (summary.usage.lastSampleAt == nil) && summary.usage.cpuSeconds >= 0)
            // The engine's own version, as the engine reports it.
            let engine = try await TestEngine.connect().0
            #expect(summary.engine.version == (try await engine.version()).version)
            let text = try await node.bdocker(user, job, ["info"])
            #expect(text.stdout.hasPrefix("Job: \(job)\n User: \(user.name) (uid \(user.uid))\n"), "\(text.stdout)")
            #expect(text.stdout.contains(" Containers: 2 (running 1, stopped 1)\n"))
            #expect(text.stdout.contains("Server:\n Engine version: \(summary.engine.version)\n"))
            #expect(text.stdout.split(separator: "\n").count < 30, "info is a summary, not the engine's JSON")
        }
    }

    @Test func pullQuietAndItsLinesInAFile() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let quiet = try await node.bdocker(user, job, ["pull", "-q", node.image])
            #expect(quiet.status == 0 && quiet.stdout == node.image + "\n", "\(quiet.stdout) \(quiet.stderr)")
            // Output to a file (not a terminal): no line twice, no progress bars, the name last.
            let pulled = try await node.bdocker(user, job, ["pull", node.image])
            let lines = pulled.stdout.split(separator: "\n")
            #expect(Set(lines).count == lines.count && !pulled.stdout.contains("[="), "\(pulled.stdout)")
            #expect(lines.last.map(String.init) == "pulled \(node.image)")
        }
    }

    @Test func execRunsAsTheJobUserInOwnContainersOnly() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser(), other = try testUser(1)
            let job = try await node.configure(user), otherJob = try await node.configure(other)
            let name = "execd-\(Int.random(in: 1000...9999))"
            #expect(try await node.bdocker(user, job, ["run", "-d", "--name", name, node.image, "sleep", "60"]).status == 0)
            let r = try await node.bdocker(user, job, ["exec", "-e", "X=42", "-w", "/tmp", name, "sh", "-c",
                                                      "echo $(id -u):$(id -g) $X $(pwd); echo err >&2; exit 5"])
            #expect(r.status == 5, "\(r.stderr)")
            #expect(r.stdout == "\(user.uid):\(user.gid) 42 /tmp\n" && r.stderr == "err\n", "\(r.stdout) \(r.stderr)")
            let foreign = try await node.bdocker(other, otherJob, ["exec", name, "true"])
            #expect(foreign.status == 125 && foreign.stderr.contains("no such container"), "\(foreign.stderr)")
            // A stopped container cannot take an exec: docker's 125 with the engine's reason.
            #expect(try await node.bdocker(user, job, ["stop", "-t", "0", name]).status == 0)
            let stopped = try await node.bdocker(user, job, ["exec", name, "true"])
            #expect(stopped.status == 125 && stopped.stderr.contains("is not running"), "\(stopped.stderr)")
        }
    }

    @Test(.requires(.registry)) func imagesListsWhatTheJobPulledAndRmiRemovesOnlyThat() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser(), other = try testUser(1)
            let job = try await node.configure(user), otherJob = try await node.configure(other)
            #expect(try await node.bdocker(user, job, ["images", "-q"]).stdout.isEmpty)
            #expect(try await node.bdocker(user, job, ["pull", "-q", node.image]).status == 0)
            let listed = try await node.bdocker(user, job, ["images"])
            let lines = listed.stdout.split(separator: "\n")
            try #require(lines.count == 2, "\(listed.stdout) \(listed.stderr)")
            #expect(lines[0].hasPrefix("REPOSITORY") && lines[1].hasPrefix(node.image.replacingOccurrences(of: ":latest", with: "")),
                    "\(listed.stdout) \(listed.stderr)")
            #expect(lines[1].contains(" latest "))
            // Another job pulled nothing: it may not remove this job's image.
            let foreign = try await node.bdocker(other, otherJob, ["rmi", node.image])
            #expect(foreign.status == 1 && foreign.stderr.contains("no such image pulled by this job"), "\(foreign.stderr)")
            // When the other job has pulled it too, neither may remove it from under the other.
            #expect(try await node.bdocker(other, otherJob, ["pull", "-q", node.image]).status == 0)
            let shared = try await node.bdocker(user, job, ["rmi", node.image])
            #expect(shared.status == 1 && shared.stderr.contains("in use by another job"), "\(shared.stderr)")
            #expect(try await node.bdocker(other, otherJob, ["images", "-q"]).stdout.count == 13)

            // Its own image, pulled by no other live job, goes.
            let own = try #require(TestEnvironment.values["BDOCKER_TEST_RUN_PULL_IMAGE"])
            #expect(try await node.bdocker(user, job, ["pull", "-q", own]).status == 0)
            let removed = try await node.bdocker(user, job, ["rmi", own])
            #expect(removed.status == 0 && removed.stdout == "Untagged: \(own)\n", "\(removed.stderr)")
            #expect(try await node.bdocker(user, job, ["images"]).stdout.contains("runpull") == false)
            let engine = try await TestEngine.connect().0
            #expect(try await engine.imageExists(own) == false)
        }
    }
}
