import BDCore
@testable import BDDocker
import BDTestSupport
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
