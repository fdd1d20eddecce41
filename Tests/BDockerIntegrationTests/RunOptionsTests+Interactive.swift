import BDCore
import BDTestSupport
import Foundation
import Testing

/// `run -i` and `-t` through the real `bdocker` binary as a real user: stdin reaches the
/// container whole and its EOF closes the container's stdin; `-t` gives the container a
/// terminal; `-it` puts the client's terminal in raw mode (`script` lends it one) and puts it
/// back; `-it` without a terminal is refused as docker refuses it.
extension RunOptionsTests {
    @Test func stdinReachesTheContainerAndItsEOFClosesIt() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let hi = try await node.bdocker(user, job, ["run", "--rm", "-i", node.image, "cat"], input: Data("hi\n".utf8))
            #expect(hi.status == 0 && hi.stdout == "hi\n", "\(hi.status) \(hi.stdout) \(hi.stderr)")
            // cat ends only at EOF, and the shell goes on after it with its own exit code.
            let eof = try await node.bdocker(user, job, ["run", "--rm", "-i", node.image, "sh", "-c", "cat; echo after-eof; exit 3"],
                                            input: Data("line\n".utf8))
            #expect(eof.status == 3 && eof.stdout == "line\nafter-eof\n", "\(eof.status) \(eof.stdout) \(eof.stderr)")
            // An empty stdin is an immediate EOF, and stderr stays apart from stdout.
            let empty = try await node.bdocker(user, job, ["run", "--rm", "-i", node.image, "sh", "-c", "wc -c; echo err >&2"],
                                              input: Data())
            #expect(empty.status == 0 && empty.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0" && empty.stderr == "err\n",
                    "\(empty.stdout) \(empty.stderr)")
            // Without -i the container's stdin is empty whatever the client's holds.
            let closed = try await node.bdocker(user, job, ["run", "--rm", node.image, "wc", "-c"], input: Data("ignored\n".utf8))
            #expect(closed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(closed.stdout) \(closed.stderr)")
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)
        }
    }

    @Test func aMebibyteOfStdinArrivesWhole() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            var generator = SystemRandomNumberGenerator()
            let data = Data((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let expected = try await runCommand("/usr/bin/md5sum", [], input: data).stdout.prefix(32)
            try #require(expected.count == 32)
            let r = try await node.bdocker(user, job, ["run", "--rm", "-i", node.image, "sh", "-c", "tee /tmp/in | md5sum; wc -c < /tmp/in"],
                                          input: data)
            #expect(r.status == 0, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.count == 2 && lines[0].hasPrefix(expected) && lines[1].trimmingCharacters(in: .whitespaces) == "\(1 << 20)",
                    "\(r.stdout) expected \(expected)")
        }
    }

    @Test func ttyGivesTheContainerATerminal() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // -t alone, from a client without a terminal: allowed, as with docker. The
            // container's terminal turns "\n" into "\r\n", and stderr comes on the same stream.
            let t = try await node.bdocker(user, job, ["run", "--rm", "-t", node.image, "sh", "-c",
                                                      "test -t 0 && test -t 1 && echo tty; echo err >&2; exit 4"])
            #expect(t.status == 4 && t.stdout == "tty\r\nerr\r\n" && t.stderr.isEmpty, "\(t.status) \(t.stdout.debugDescription) \(t.stderr)")
            // Without -t there is none.
            let plain = try await node.bdocker(user, job, ["run", "--rm", node.image, "sh", "-c", "test -t 1 || echo no-tty"])
            #expect(plain.stdout == "no-tty\n", "\(plain.stdout)")
            // -it without a terminal: docker's message and status 1, and nothing created.
            let refused = try await node.bdocker(user, job, ["run", "-it", node.image, "true"], input: Data("x\n".utf8))
            #expect(refused.status == 1 && refused.stderr == "bdocker: the input device is not a TTY\n", "\(refused.status) \(refused.stderr)")
            #expect(try await node.bdocker(user, job, ["ps", "-a", "-q"]).stdout.isEmpty)
        }
    }

    @Test func interactiveTerminalIsRawWhileAttachedAndRestoredAfter() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // script gives the client a terminal and types what we pipe into it. The terminal's
            // settings are printed before and after the run: they must be the same.
            let run = "\(Repo.binDir)/bdocker run -H \(node.server.endpoint) --rm -it \(node.image) "
                + "sh -c 'read x; echo got:$x; stty size'"
            let script = "stty cols 91 rows 33; stty -g; \(run); echo status=$?; stty -g"
            let r = try await runCommand("/usr/bin/setpriv",
                                         ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                          "/usr/bin/script", "-qec", script, "/dev/null"],
                                         environment: ["JOB_ID": job, "HOME": user.home, "PATH": "/usr/bin:/bin"],
                                         directory: user.home, input: Data("hello\n".utf8))
            let lines = r.stdout.components(separatedBy: "\r\n").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(lines.contains("got:hello"), "\(r.stdout.debugDescription)")
            // The container's terminal has the client's size.
            #expect(lines.contains("33 91"), "\(r.stdout.debugDescription)")
            #expect(lines.contains("status=0"), "\(r.stdout.debugDescription) \(r.stderr)")
            let settings = lines.filter { $0.split(separator: ":").count > 30 }
            #expect(settings.count == 2 && settings[0] == settings[1], "\(settings)")
        }
    }

    @Test func aRawTerminalFollowsTheWindowAndIsRestoredWhenASignalEndsTheRun() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // The container reports its terminal's size once it has the client's (set just after
            // the container starts, as docker's client does with this API version), then once it
            // has the new one, and exits 7 on TERM. (stty sets columns and rows one at a time, so
            // the container may see 33x50 between them: it waits for the size, not a change.)
            let watch = #"trap 'echo got-term; exit 7' TERM; until [ "$(stty size 2>/dev/null)" = "33 91" ]; do sleep 0.1; done; "#
                + #"echo sized:$(stty size); until [ "$(stty size)" = "20 50" ]; do sleep 0.1; done; echo resized:$(stty size); "#
                + "while :; do sleep 0.2; done"
            let dir = node.userDir(user, "tty")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            func script(_ options: String, typescript: String) -> String {
                // Each step waits for the container's output in script's typescript (flushed as it
                // comes), however slow the machine: the resize after the start size arrived, the
                // signal after the new size arrived. (The typescript's header holds the command, so
                // each pattern is written so that the command's own text does not match it.) A wait
                // gives up after a minute, and the expectations below say what never came.
                // Without job control a background job still shares the terminal's foreground
                // group, so it gets SIGWINCH; its stdin must be named, or sh gives it /dev/null.
                "upto() { i=0; until grep -q \"$1\" \(typescript); do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done; }; "
                    + "stty cols 91 rows 33; stty -g; \(Repo.binDir)/bdocker run -H \(node.server.endpoint) \(options) -it \(node.image) "
                    + "sh -c '\(watch.replacingOccurrences(of: "'", with: #"'\''"#))' </dev/tty & pid=$!; "
                    + "upto 'sized:33 9[1]'; stty cols 50 rows 20; upto 'resized:20 5[0]'; kill -TERM $pid; wait $pid; echo status=$?; stty -g"
            }
            for (index, (options, status)) in [("--rm", "status=7"), ("--sig-proxy=false", "status=143")].enumerated() {
                let typescript = "\(dir)/typescript-\(index)"
                let r = try await runCommand("/usr/bin/setpriv",
                                             ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--",
                                              "/usr/bin/script", "-qfec", script(options, typescript: typescript), typescript],
                                             environment: ["JOB_ID": job, "HOME": user.home, "PATH": "/usr/bin:/bin"],
                                             directory: user.home)
                // script turns its own stdin's end into a NUL, which a terminal echoes as ^@ at
                // whatever moment it comes, so it is dropped before the output is read.
                let lines = r.stdout.replacingOccurrences(of: "^@", with: "")
                    .components(separatedBy: "\r\n").flatMap { $0.components(separatedBy: "\n") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                #expect(lines.contains("sized:33 91") && lines.contains("resized:20 50"), "\(options): \(r.stdout.debugDescription)")
                #expect(lines.contains(status), "\(options): \(r.stdout.debugDescription) \(r.stderr)")
                // Forwarded, TERM reaches the container; not forwarded, the client dies of it.
                #expect(lines.contains("got-term") == (status == "status=7"), "\(options): \(r.stdout.debugDescription)")
                let settings = lines.filter { $0.split(separator: ":").count > 30 }
                #expect(settings.count == 2 && settings.first == settings.last, "\(options): \(settings) \(r.stdout.debugDescription)")
            }
        }
    }

    @Test func aTerminalsOutputOutlastsTheEndOfItsInput() async throws {
        // The engine cuts a terminal's output when the attach's stdin closes; the daemon keeps
        // the container's terminal open instead, so what it prints after the client's input
        // ended still arrives. A framed body sent by hand ends right after its request frame.
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let token = try String(contentsOfFile: "\(user.home)/.bdocker_token_\(job)", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let request = try JSONEncoder().encode(RunRequest(token: token, imageID: node.image,
                                                              script: ["sh", "-c", "sleep 2; echo late-output; exit 5"],
                                                              detach: false, workingDir: nil, volumes: [], autoRemove: true,
                                                              interactive: true, tty: true))
            let dir = node.userDir(user, "framed")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let framed = "\(dir)/request"
            try Data(StreamFrames.encode(.request, Array(request))).write(to: URL(fileURLWithPath: framed))
            chmod(framed, 0o644)
            let r = try await SecurityTests.asUser(user, """
                curl -sS --unix-socket \(node.config.socketPath) -X PUT -H 'Content-Type: \(StreamFrames.contentType)' \
                  --data-binary @\(framed) http://bdockerd/run
                """)
            #expect(r.status == 0 && r.stdout.contains("late-output") && r.stdout.contains("\"exit_code\":5"),
                    "\(r.status) \(r.stdout.debugDescription) \(r.stderr)")
        }
    }

    @Test func aSilentStdinOutlastsTheIdleTimeout() async throws {
        // The body of an attached run is the user's stdin: silent for longer than the
        // daemon's idle timeout, the connection must stay.
        try await ContainerCommandTests().withNode(idleTimeout: .seconds(1)) { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            client.arguments = ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--", Repo.binDir + "/bdocker",
                                "run", "-H", node.server.endpoint, "--rm", "-i", node.image, "sh", "-c", "read x; echo got:$x"]
            client.environment = ["JOB_ID": job, "HOME": user.home, "PATH": "/usr/bin:/bin"]
            let input = Pipe(), output = Pipe()
            client.standardInput = input
            client.standardOutput = output
            client.standardError = FileHandle.nullDevice
            try client.run()
            defer { if client.isRunning { kill(client.processIdentifier, SIGKILL) } }
            try await Task.sleep(for: .seconds(4))
            #expect(client.isRunning, "the attached run ended while its stdin was silent")
            try input.fileHandleForWriting.write(contentsOf: Data("late\n".utf8))
            try input.fileHandleForWriting.close()
            #expect(try await eventually(within: .seconds(30)) { !client.isRunning })
            client.waitUntilExit()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(client.terminationStatus == 0 && printed == "got:late\n", "\(client.terminationStatus) \(printed)")
        }
    }

    @Test func detachedInteractiveKeepsStdinOpen() async throws {
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            // As `docker run -di`: nobody writes, and `cat` waits on the open stdin instead of ending.
            let id = try await node.bdocker(user, job, ["run", "-d", "-i", node.image, "cat"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(id.count == 64)
            try await Task.sleep(for: .seconds(1))
            let state = try await node.bdocker(user, job, ["inspect", String(id.prefix(12))]).stdout
            #expect(state.contains("\"Running\" : true") && state.contains("\"OpenStdin\" : true"), "\(state.prefix(400))")
            #expect(try await node.bdocker(user, job, ["rm", "-f", String(id.prefix(12))]).status == 0)
        }
    }
}
