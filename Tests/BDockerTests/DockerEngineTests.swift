import BDCore
@testable import BDDocker
import Foundation
import NIOCore
import Testing

// Unit tests of the pieces that need no engine.
@Suite struct DockerEngineFramingTests {
    /// A multiplexed stream as the engine writes it: header [stream, 0, 0, 0, UInt32 BE length] + payload.
    static func frame(_ stream: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [stream, 0, 0, 0, UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff),
                UInt8(length & 0xff)] + payload
    }

    static let sample: [(OutputChannel, [UInt8])] = [
        (.stdout, Array("out 1\n".utf8)), (.stderr, Array("err 1\n".utf8)), (.stdout, []),
        (.stderr, Array(repeating: UInt8(ascii: "e"), count: 300)),   // length needs two bytes
        (.stdout, Array("out 2\n".utf8)), (.stderr, Array("err 2".utf8)),
    ]
    static let sampleBytes = sample.flatMap { frame($0.0 == .stdout ? 1 : 2, $0.1) }

    /// Feeds `chunks` and returns (channel, payload) in the order they came out.
    static func demultiplex(_ chunks: [[UInt8]]) throws -> [(OutputChannel, [UInt8])] {
        var demultiplexer = OutputDemultiplexer()
        var out: [(OutputChannel, [UInt8])] = []
        for chunk in chunks {
            for frame in try demultiplexer.feed(ByteBuffer(bytes: chunk)) {
                out.append((frame.channel, Array(frame.payload.readableBytesView)))
            }
        }
        try demultiplexer.finish()
        return out
    }

    static func same(_ a: [(OutputChannel, [UInt8])], _ b: [(OutputChannel, [UInt8])]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    @Test func demultiplexesByteByByte() throws {
        let out = try Self.demultiplex(Self.sampleBytes.map { [$0] })
        #expect(Self.same(out, Self.sample))
    }

    @Test func demultiplexesAtEverySplitPoint() throws {
        for cut in 0...Self.sampleBytes.count {
            let out = try Self.demultiplex([Array(Self.sampleBytes[..<cut]), Array(Self.sampleBytes[cut...])])
            #expect(Self.same(out, Self.sample), "split at \(cut)")
        }
    }

    @Test func stdinFramesCountAsStdout() throws {
        let out = try Self.demultiplex([Self.frame(0, [65])])
        #expect(Self.same(out, [(.stdout, [65])]))
    }

    @Test func reportsACutOffFrame() throws {
        var demultiplexer = OutputDemultiplexer()
        let frames = try demultiplexer.feed(ByteBuffer(bytes: Self.frame(1, Array("hello".utf8)).dropLast()))
        #expect(frames.isEmpty)
        #expect(throws: BDockerError.self) { try demultiplexer.finish() }
    }

    @Test func rejectsRawTTYOutput() {
        var demultiplexer = OutputDemultiplexer()
        #expect(throws: BDockerError.self) { _ = try demultiplexer.feed(ByteBuffer(string: "plain text output\n")) }
    }

    @Test func splitsPullLinesAcrossChunks() {
        var splitter = LineSplitter()
        var lines: [String] = []
        for byte in "{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}".utf8 {
            lines += splitter.feed(ByteBuffer(bytes: [byte])).map { String(buffer: $0) }
        }
        lines += splitter.finish().map { [String(buffer: $0)] } ?? []
        #expect(lines == ["{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"])
    }

    @Test func splitsImageReferences() throws {
        func split(_ reference: String) throws -> String {
            let image = try ImageReference(reference)
            return image.repository + " " + (image.tag ?? "-")
        }
        #expect(try split("busybox") == "busybox latest")
        #expect(try split("busybox:1.35") == "busybox 1.35")
        #expect(try split("127.0.0.1:5055/busybox") == "127.0.0.1:5055/busybox latest")
        #expect(try split("127.0.0.1:5055/lib/busybox:v2") == "127.0.0.1:5055/lib/busybox v2")
        let pinned = "127.0.0.1:5055/busybox@sha256:" + String(repeating: "a", count: 64)
        #expect(try split(pinned) == pinned + " -")
        for bad in ["", "busybox:", "a b"] {
            #expect(throws: BDockerError.self, "\(bad)") { try ImageReference(bad) }
        }
    }

    @Test func classifiesPullFailures() {
        let missing = PullFailure.error(reference: "r", message: "manifest for r:x not found: manifest unknown: manifest unknown")
        let unreachable = PullFailure.error(
            reference: "r", message: "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused", status: 500)
        #expect(missing.httpStatus == 404)
        #expect(unreachable.httpStatus == 503)
        #expect(PullFailure.error(reference: "r", message: "invalid reference format", status: 400).httpStatus == 400)
        #expect(PullFailure.error(reference: "r", message: "no space left on device", status: 500).httpStatus == 500)
    }

    @Test func translatesBaseURLs() throws {
        let unix = try EngineEndpoint("unix:///run/bdocker-test/docker.sock")
        #expect(unix.origin == "http+unix://%2Frun%2Fbdocker-test%2Fdocker.sock")
        #expect(unix.hostHeader == "docker")
        #expect(try EngineEndpoint("tcp://10.0.0.1:2375").origin == "http://10.0.0.1:2375")
        #expect(try EngineEndpoint("http://docker.example:2375/").origin == "http://docker.example:2375")
        #expect(try EngineEndpoint("tcp://10.0.0.1:2375").hostHeader == nil)
        for bad in ["", "/var/run/docker.sock", "unix://docker.sock", "tcp://", "tcp://host:2375/v1.41", "ftp://host"] {
            #expect(throws: BDockerError.self, "\(bad)") { try EngineEndpoint(bad) }
        }
    }

    @Test func keepsJSONIntegersExact() throws {
        let text = #"{"Created":1700000000123,"Ratio":0.5,"Tags":["a",null,true],"Empty":{}}"#
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(value["Created"] == .int(1_700_000_000_123))
        #expect(value["Ratio"] == .double(0.5))
        #expect(value["Tags"] == .array([.string("a"), .null, .bool(true)]))
        let again = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
        #expect(again == value)
    }

    @Test func unreachableEngineIsUnavailable() async throws {
        let engine = try DockerEngine(baseURL: "unix:///nonexistent/docker.sock", timeoutSeconds: 5)
        let error = await failure { () async throws(BDockerError) in try await engine.ping() }
        #expect(error?.httpStatus == 503)
        #expect(error?.message.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock") == true)
        // Refused at once, not retried until the timeout.
        let clock = ContinuousClock()
        let start = clock.now
        let refused = await failure { () async throws(BDockerError) in
            try await DockerEngine(baseURL: "tcp://127.0.0.1:1", timeoutSeconds: 30).ping()
        }
        #expect(refused?.httpStatus == 503)
        #expect(clock.now - start < .seconds(5))
    }
}

// Against the real test engine and registry of tools/test-env.sh, one test at a time. The pull
// test removes only its own image (BDOCKER_TEST_PULL_IMAGE), which no test runs: never the
// image other suites run containers of in parallel.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DockerEngineTests {
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

    @Test func pullsFromTheRegistry() async throws {
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
            await failure { () async throws(BDockerError) in try await engine.logs(id, follow: false) { _ in } },
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

/// The error `body` throws, or nil when it succeeds.
private func failure<T>(of body: () async throws(BDockerError) -> T) async -> BDockerError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

/// The engine and image of tools/test-env.sh, and helpers that keep tests short and clean up.
private enum TestEngine {
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

    /// The process environment, falling back to the file `tools/test-env.sh up` writes.
    static let settings: [String: String] = {
        var values: [String: String] = [:]
        let file = (try? String(contentsOfFile: "/run/bdocker-test/env", encoding: .utf8)) ?? ""
        for line in file.split(separator: "\n") {
            let assignment = line.hasPrefix("export ") ? line.dropFirst("export ".count) : line
            guard let equals = assignment.firstIndex(of: "=") else { continue }
            let value = assignment[assignment.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            values[String(assignment[..<equals])] = value
        }
        return values.merging(ProcessInfo.processInfo.environment) { $1 }
    }()

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
        try await engine.logs(id, follow: follow) { await recorder.add(Output($0.channel, String(buffer: $0.payload))) }
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
