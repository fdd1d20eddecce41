import BDCore
@testable import BDDocker
import BDTestSupport
import Foundation
import NIOCore
import Testing

// Against the real test engine and registry of tools/test-env.sh, one test at a time. The pull
// test removes only its own image (BDOCKER_TEST_PULL_IMAGE), which no test runs: never the
// image other suites run containers of in parallel.
@Suite(.serialized, .timeLimit(.minutes(2)), .requires(.dockerEngine)) struct DockerEngineTests {
    let engine: DockerEngine
    let image: String
    let registry: String

    init() async throws {
        (engine, image, registry) = try await TestEngine.connect()
    }

    @Test func answersPingVersionAndInfo() async throws {
        try await engine.ping()
        let version = try await engine.version()
        #expect(version.apiVersion.compare("1.41", options: .numeric) != .orderedAscending)
        #expect(try await engine.info()["ServerVersion"]?.string?.isEmpty == false)
    }

    @Test(.requires(.registry)) func pullsFromTheRegistry() async throws {
        // Start without the image so the pull really downloads: its layer is its own, so removing
        // the tag removes the layer too.
        let image = try TestEngine.pullImage()
        let removal = await failure { () async throws(BDockerError) in try await engine.removeImage(image) }
        if let removal, removal.httpStatus != 404 { throw removal }
        let lines = Recorder<PullProgress>()
        try await engine.pull(image) { await lines.add($0) }
        let statuses = await lines.items.map(\.status)
        #expect(statuses.contains("Status: Downloaded newer image for \(image)"), "\(statuses)")
        #expect(statuses.contains("Pull complete"), "no layer was downloaded: \(statuses)")
        #expect(try await engine.imageExists(image))
        // The same image pinned by digest.
        let digest = try #require(statuses.first { $0.hasPrefix("Digest: sha256:") }?.dropFirst("Digest: ".count))
        let repository = try ImageReference(image).repository
        let pinned = "\(repository)@\(digest)"
        try await engine.pull(pinned)
        #expect(try await engine.imageExists(pinned))
    }

    @Test func pullOfAMissingImageIsNotFound() async throws {
        let tag = await failure { () async throws(BDockerError) in try await engine.pull("\(registry)/busybox:no-such-tag") }
        #expect(tag?.httpStatus == 404, "\(String(describing: tag))")
        let repository = await failure { () async throws(BDockerError) in try await engine.pull("\(registry)/no-such-repo") }
        #expect(repository?.httpStatus == 404, "\(String(describing: repository))")
        #expect(try await engine.imageExists("\(registry)/no-such-repo") == false)
    }

    @Test func pullFromAnUnreachableRegistryFailsFast() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let error = await failure { () async throws(BDockerError) in try await engine.pull("127.0.0.1:1/x") }
        #expect(error?.httpStatus == 503, "\(String(describing: error))")
        #expect(clock.now - start < .seconds(10))
    }

    @Test func createFromAMissingImageIsNotFound() async throws {
        let error = await failure { () async throws(BDockerError) in
            try await engine.createContainer(TestEngine.spec("\(registry)/no-such-image:1", ["true"]))
        }
        #expect(error?.httpStatus == 404, "\(String(describing: error))")
    }

    @Test func runReportsExitCodeAndSeparatesOutput() async throws {
        try await TestEngine.ensureImage(engine, image)
        // The pause matters: the engine copies stdout and stderr in separate goroutines, so
        // writes to the two streams within microseconds of each other reach attach and the
        // logs in either order (about half the time, measured). Within one stream order holds.
        let spec = TestEngine.spec(image, ["sh", "-c", "echo out; sleep 0.2; echo err >&2; exit 3"])
        try await TestEngine.withContainer(engine, spec) { id in
            let run = try await TestEngine.run(engine, id)
            #expect(run.exitCode == 3)
            #expect(run.output == [.init(.stdout, "out\n"), .init(.stderr, "err\n")])
            let logs = try await TestEngine.logs(engine, id, follow: false)
            #expect(logs == run.output)
        }
    }

    /// Attach-before-start and start-then-follow-logs both keep all output of a container that
    /// writes and exits at once, and of one that writes many frames.
    @Test func noOutputOfAQuickContainerIsLost() async throws {
        try await TestEngine.ensureImage(engine, image)
        for _ in 0..<3 {
            try await TestEngine.withContainer(engine, TestEngine.spec(image, ["echo", "hi"])) { id in
                let run = try await TestEngine.run(engine, id)
                #expect(run.output == [.init(.stdout, "hi\n")])
            }
            try await TestEngine.withContainer(engine, TestEngine.spec(image, ["echo", "hi"])) { id in
                try await engine.start(id)
                let logs = try await TestEngine.logs(engine, id, follow: true)
                #expect(logs == [.init(.stdout, "hi\n")])
                #expect(try await engine.wait(id) == 0)
            }
        }
        let lines = { (count: Int) in (1...count).map { "\($0)\n" }.joined() }
        let spec = TestEngine.spec(image, ["sh", "-c", "seq 1 50000; seq 1 20000 >&2"])
        try await TestEngine.withContainer(engine, spec) { id in
            let run = try await TestEngine.run(engine, id)
            #expect(TestEngine.text(of: run.output, .stdout) == lines(50000))
            #expect(TestEngine.text(of: run.output, .stderr) == lines(20000))
        }
    }

    @Test func runsAsAnUnprivilegedUser() async throws {
        try await TestEngine.ensureImage(engine, image)
        var spec = TestEngine.spec(image, ["sh", "-c", "id -u; id -g; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status"])
        spec.user = "1001:1001"
        spec.securityOpt = ["no-new-privileges"]
        spec.capDrop = ["ALL"]
        try await TestEngine.withContainer(engine, spec) { id in
            let run = try await TestEngine.run(engine, id)
            #expect(run.exitCode == 0)
            let text = run.output.map(\.text).joined()
            #expect(text.hasPrefix("1001\n1001\n"), "\(text)")
            #expect(text.contains("CapEff:\t0000000000000000\n"), "\(text)")
            #expect(text.contains("NoNewPrivs:\t1\n"), "\(text)")
            let hostConfig = try await engine.inspect(id)["HostConfig"]
            #expect(hostConfig?["NetworkMode"] == .string("none"))
            #expect(hostConfig?["CapDrop"] == .array([.string("ALL")]))
        }
    }

    @Test func listsByLabel() async throws {
        try await TestEngine.ensureImage(engine, image)
        var first = TestEngine.spec(image, ["sleep", "60"])
        first.labels["bdocker.test.case"] = "first"
        var second = TestEngine.spec(image, ["sleep", "60"])
        second.labels["bdocker.test.case"] = "second"
        try await TestEngine.withContainer(engine, first) { firstID in
            try await TestEngine.withContainer(engine, second) { secondID in
                let run = ["bdocker.test.run": TestEngine.runID]
                let both = try await engine.list(all: true, labelFilter: run)
                #expect(Set(both.map(\.id)) == [firstID, secondID])
                let only = try await engine.list(all: true, labelFilter: run.merging(["bdocker.test.case": "first"]) { $1 })
                #expect(only.map(\.id) == [firstID])
                let summary = try #require(only.first)
                #expect(summary.image == image)
                #expect(summary.state == "created")
                #expect(summary.command == "sleep 60")
                #expect(summary.labels["bdocker.test.case"] == "first")
                #expect(summary.names.count == 1)
                #expect(try await engine.list(all: false, labelFilter: run).isEmpty)
            }
        }
    }

    @Test func unknownContainerIsNotFound() async throws {
        let id = "bdtest-no-such-container-\(UUID().uuidString.lowercased())"
        let failures: [BDockerError?] = [
            await failure { () async throws(BDockerError) in try await engine.inspect(id) },
            await failure { () async throws(BDockerError) in try await engine.start(id) },
            await failure { () async throws(BDockerError) in try await engine.stop(id) },
            await failure { () async throws(BDockerError) in try await engine.wait(id) },
            await failure { () async throws(BDockerError) in try await engine.remove(id, force: true) },
            await failure { () async throws(BDockerError) in try await engine.logs(id) { _ in } },
            await failure { () async throws(BDockerError) in try await engine.getArchive(id, path: "/") },
        ]
        #expect(failures.map { $0?.httpStatus } == Array(repeating: 404, count: failures.count), "\(failures)")
        #expect(failures.first??.message.contains("No such container") == true)
    }

    @Test func startsStopsAndRemoves() async throws {
        try await TestEngine.ensureImage(engine, image)
        try await TestEngine.withContainer(engine, TestEngine.spec(image, ["sleep", "300"])) { id in
            try await engine.start(id)
            try await engine.start(id)   // already running: fine
            #expect(try await engine.inspect(id)["State"]?["Running"] == .bool(true))
            let busy = await failure { () async throws(BDockerError) in try await engine.remove(id, force: false) }
            #expect(busy?.httpStatus == 409, "\(String(describing: busy))")
            // sleep as PID 1 ignores SIGTERM, so this also shows the SIGKILL after the grace period.
            try await engine.stop(id, timeoutSeconds: 1)
            try await engine.stop(id)    // already stopped: fine
            #expect(try await engine.wait(id) == 137)
            try await engine.start(id)
            #expect(try await engine.inspect(id)["State"]?["Running"] == .bool(true))
            try await engine.remove(id, force: true)
            let gone = await failure { () async throws(BDockerError) in try await engine.inspect(id) }
            #expect(gone?.httpStatus == 404)
        }
    }

    @Test func copiesArchivesInAndOut() async throws {
        try await TestEngine.ensureImage(engine, image)
        let work = try TestEngine.TemporaryDirectory()
        let content = "hello from the archive test \(UUID())\n"
        try Data(content.utf8).write(to: URL(fileURLWithPath: work.path + "/hello.txt"))
        let tar = try TestEngine.runTool("/bin/tar", ["-C", work.path, "-cf", "-", "hello.txt"])

        try await TestEngine.withContainer(engine, TestEngine.spec(image, ["cat", "/tmp/hello.txt"])) { id in
            // Two chunks, as a child process would deliver them.
            let half = tar.count / 2
            try await engine.putArchive(id, path: "/tmp", tar: TestEngine.chunks([tar[..<half], tar[half...]]))
            let run = try await TestEngine.run(engine, id)
            #expect(run.output == [.init(.stdout, content)])

            var back = Data()
            for try await chunk in try await engine.getArchive(id, path: "/tmp/hello.txt") {
                back.append(contentsOf: chunk.readableBytesView)
            }
            try back.write(to: URL(fileURLWithPath: work.path + "/back.tar"))
            let extracted = try TestEngine.runTool("/bin/tar", ["-xOf", work.path + "/back.tar", "hello.txt"])
            #expect(String(decoding: extracted, as: UTF8.self) == content)

            let putMissing = await failure { () async throws(BDockerError) in
                try await engine.putArchive(id, path: "/no/such/dir", tar: TestEngine.chunks([tar[...]]))
            }
            #expect(putMissing?.httpStatus == 404, "\(String(describing: putMissing))")
            let getMissing = await failure { () async throws(BDockerError) in try await engine.getArchive(id, path: "/no/such/file") }
            #expect(getMissing?.httpStatus == 404, "\(String(describing: getMissing))")
        }
    }

    @Test func placesTheContainerUnderItsCgroupParent() async throws {
        try await TestEngine.ensureImage(engine, image)
        let parent = "bdtest-docker-\(UUID().uuidString.prefix(8).lowercased())"
        var spec = TestEngine.spec(image, ["sleep", "300"])
        spec.cgroupParent = "/" + parent
        var containerID: String?
        defer { TestEngine.removeCgroups(parent, child: containerID) }
        try await TestEngine.withContainer(engine, spec) { id in
            containerID = id
            try await engine.start(id)
            var isDirectory: ObjCBool = false
            let dir = "/sys/fs/cgroup/memory/\(parent)/\(id)"
            #expect(FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) && isDirectory.boolValue, "\(dir)")
        }
        TestEngine.removeCgroups(parent, child: containerID)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/\(parent)"))
    }
}

/// Collects what a @Sendable callback receives.
private actor Recorder<Item: Sendable> {
    private(set) var items: [Item] = []
    func add(_ item: Item) { items.append(item) }
}

/// The engine and image of tools/test-env.sh, and helpers that keep tests short and clean up.
enum TestEngine {
    /// Labels every container of this process, so cleanup and list filters never touch others'.
    static let runID = UUID().uuidString.lowercased()

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    /// One piece of output, as text.
    struct Output: Equatable, CustomStringConvertible {
        let channel: OutputChannel
        let text: String
        init(_ channel: OutputChannel, _ text: String) {
            self.channel = channel
            self.text = text
        }
        var description: String { "\(channel): \(text.debugDescription)" }
    }

    static var settings: [String: String] { TestEnvironment.values }

    /// The engine, after checking it answers: a missing engine fails the test, naming the fix.
    static func connect() async throws -> (DockerEngine, image: String, registry: String) {
        guard let url = settings["BDOCKER_TEST_DOCKER_URL"], let image = settings["BDOCKER_TEST_IMAGE"] else {
            throw Unavailable(description: "BDOCKER_TEST_DOCKER_URL/BDOCKER_TEST_IMAGE are not set and /run/bdocker-test/env is missing: run `sudo tools/test-env.sh up` first")
        }
        let engine = try DockerEngine(baseURL: url, timeoutSeconds: 30)
        do {
            try await engine.ping()
        } catch {
            throw Unavailable(description: "the test Docker engine does not answer (\(error)); start it with `sudo tools/test-env.sh up`")
        }
        let registry = settings["BDOCKER_TEST_REGISTRY"] ?? String(image.prefix { $0 != "/" })
        return (engine, image, registry)
    }

    /// The image only the pull test uses (tools/test-env.sh pushes it): the pull test removes it,
    /// so it must never be the image the other tests run.
    static func pullImage() throws -> String {
        guard let pullImage = settings["BDOCKER_TEST_PULL_IMAGE"] else {
            throw Unavailable(description: "BDOCKER_TEST_PULL_IMAGE is not set and /run/bdocker-test/env has none: run `sudo tools/test-env.sh up` (it pushes the pull test's own tag)")
        }
        guard pullImage != settings["BDOCKER_TEST_IMAGE"] else {
            throw Unavailable(description: "BDOCKER_TEST_PULL_IMAGE is BDOCKER_TEST_IMAGE (\(pullImage)): the pull test would remove the image other tests run")
        }
        return pullImage
    }

    static func spec(_ image: String, _ cmd: [String]) -> ContainerSpec {
        ContainerSpec(image: image, cmd: cmd, labels: ["bdocker.test": "1", "bdocker.test.run": runID], networkMode: "none")
    }

    static func ensureImage(_ engine: DockerEngine, _ image: String) async throws {
        if try await !engine.imageExists(image) { try await engine.pull(image) }
    }

    /// Runs `body` with a new container and removes the container afterwards, also on failure.
    static func withContainer(_ engine: DockerEngine, _ spec: ContainerSpec,
                              _ body: (String) async throws -> Void) async throws {
        let id = try await engine.createContainer(spec)
        do {
            try await body(id)
        } catch {
            try? await engine.remove(id, force: true)
            throw error
        }
        do {
            try await engine.remove(id, force: true)
        } catch .notFound {
            // The test removed it itself.
        }
    }

    /// Attach, start, read everything, wait: the way bdocker runs a job.
    static func run(_ engine: DockerEngine, _ id: String) async throws -> (exitCode: Int, output: [Output]) {
        let output = try await engine.attach(id)
        try await engine.start(id)
        let recorder = Recorder<Output>()
        try await output.stream { await recorder.add(Output($0.channel, String(buffer: $0.payload))) }
        return (try await engine.wait(id), merged(await recorder.items))
    }

    static func logs(_ engine: DockerEngine, _ id: String, follow: Bool) async throws -> [Output] {
        let recorder = Recorder<Output>()
        try await engine.logs(id, LogOptions(follow: follow)) { await recorder.add(Output($0.channel, String(buffer: $0.payload))) }
        return merged(await recorder.items)
    }

    /// Joins neighbouring pieces of one stream: where the engine cuts frames is not the point.
    static func merged(_ pieces: [Output]) -> [Output] {
        pieces.reduce(into: []) { result, piece in
            if let last = result.last, last.channel == piece.channel {
                result[result.count - 1] = Output(last.channel, last.text + piece.text)
            } else {
                result.append(piece)
            }
        }
    }

    /// Everything written to one stream.
    static func text(of output: [Output], _ channel: OutputChannel) -> String {
        output.filter { $0.channel == channel }.map(\.text).joined()
    }

    static func chunks(_ parts: [Data.SubSequence]) -> AsyncStream<ByteBuffer> {
        AsyncStream { continuation in
            for part in parts { continuation.yield(ByteBuffer(bytes: part)) }
            continuation.finish()
        }
    }

    /// Runs a tool and returns its stdout; a non-zero exit fails the test.
    static func runTool(_ path: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Unavailable(description: "\(path) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
        return data
    }

    /// Removes the cgroup directories a container with CgroupParent "/`parent`" made in each
    /// controller, deepest first, and nothing else.
    static func removeCgroups(_ parent: String, child: String?) {
        let root = "/sys/fs/cgroup"
        let controllers = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for controller in controllers {
            let dir = "\(root)/\(controller)/\(parent)"
            guard FileManager.default.fileExists(atPath: dir) else { continue }
            if let child { rmdir("\(dir)/\(child)") }
            // The engine may still be tearing the container's cgroup down: retry briefly.
            var attempts = 0
            while rmdir(dir) != 0, errno == EBUSY, attempts < 50 {
                attempts += 1
                usleep(100_000)
            }
        }
    }

    final class TemporaryDirectory {
        let path: String
        init() throws {
            path = NSTemporaryDirectory() + "bdtest-docker-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }
}
