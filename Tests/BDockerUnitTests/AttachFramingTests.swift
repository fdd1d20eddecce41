@testable import BDAPI
import BDCore
@testable import BDDocker
import Foundation
import NIOCore
import Testing

/// The framing of `run -i`/`-t`: the request body's frames, the engine's hijack handshake and
/// the one-slot inbox between the body's reader and the container's stdin.
@Suite struct AttachFramingTests {
    @Test func requestBodyFramesSurviveAnyCut() throws {
        let size = try JSONEncoder().encode(TerminalSize(height: 24, width: 80))
        let stream = StreamFrames.encode(.request, Array("{}".utf8)) + StreamFrames.encode(.stdin, Array("hi\n".utf8))
            + StreamFrames.encode(.stdin, []) + StreamFrames.encode(.resize, Array(size))
        for cut in 0...stream.count {
            var reader = StreamFrameReader(maxPayload: 1 << 20)
            let frames = try reader.feed(Array(stream[..<cut])) + reader.feed(Array(stream[cut...]))
            #expect(frames.map(\.0) == [.request, .stdin, .stdin, .resize], "cut at \(cut)")
            #expect(frames.map(\.1) == [Array("{}".utf8), Array("hi\n".utf8), [], Array(size)])
            #expect(!reader.hasPartialFrame)
        }
        var partial = StreamFrameReader()
        #expect(try partial.feed(Array(stream.prefix(5))).isEmpty)
        #expect(partial.hasPartialFrame)
    }

    @Test func refusesUnknownKindsAndOversizedFrames() {
        var reader = StreamFrameReader(maxPayload: 1024)
        #expect(throws: BDockerError.invalidInput("the stream has a frame of unknown kind 9")) {
            try reader.feed([9, 0, 0, 0, 0, 0, 0, 0])
        }
        // A header claiming more than the limit is refused at once, not waited for.
        var big = StreamFrameReader(maxPayload: 1024)
        #expect(throws: BDockerError.self) { try big.feed(StreamFrames.header(.stdin, length: 1025)) }
        // Docker's header has three zero bytes; anything else is not this framing.
        var odd = StreamFrameReader()
        #expect(throws: BDockerError.self) { try odd.feed([1, 0, 7, 0, 0, 0, 0, 0]) }
    }

    @Test func readsTheHijackHandshakeAndKeepsTheStreamAfterIt() throws {
        let head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        let answer = Array(head.utf8) + [1, 0, 0, 0, 0, 0, 0, 2, 104, 105]
        for cut in 0...answer.count {
            var handshake = HijackHandshake()
            // Once the head is whole, later bytes are the stream's, read past the handshake.
            var stream: [UInt8] = []
            var result = try handshake.feed(ByteBuffer(bytes: answer[..<cut]))
            if result == nil { result = try handshake.feed(ByteBuffer(bytes: answer[cut...])) } else { stream = Array(answer[cut...]) }
            let parsed = try #require(result, "cut at \(cut)")
            #expect(parsed.status == 101 && parsed.contentLength == nil)
            #expect(Array(parsed.rest.readableBytesView) + stream == [1, 0, 0, 0, 0, 0, 0, 2, 104, 105], "cut at \(cut)")
        }
        var failed = HijackHandshake()
        let error = try #require(try failed.feed(ByteBuffer(string: "HTTP/1.1 404 Not Found\r\ncontent-length: 29\r\n\r\n{\"message\":\"No such container\"}")))
        #expect(error.status == 404 && error.contentLength == 29 && String(buffer: error.rest).hasPrefix("{\"message\""))
        var garbage = HijackHandshake()
        #expect(throws: BDockerError.self) { try garbage.feed(ByteBuffer(string: "SSH-2.0-OpenSSH\r\n\r\n")) }
        var endless = HijackHandshake()
        #expect(throws: BDockerError.self) {
            try endless.feed(ByteBuffer(string: "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Pad: y\r\n", count: 8000)))
        }
    }

    @Test func rawEndpointsForTheHijack() throws {
        #expect(try EngineEndpoint("unix:///run/docker.sock").socket == .unix(path: "/run/docker.sock"))
        #expect(try EngineEndpoint("tcp://10.0.0.1:2376").socket == .tcp(host: "10.0.0.1", port: 2376))
        #expect(try EngineEndpoint("http://docker.example").socket == .tcp(host: "docker.example", port: 2375))
        #expect(try EngineEndpoint("https://docker.example:2376").socket == nil)
    }

    @Test func theInboxHandsOverOneFrameAtATimeUntilTheEnd() async throws {
        let inbox = FrameInbox()
        let writer = Task {
            for i in 0..<50 { await inbox.put((.stdin, [UInt8(i)])) }
            inbox.finish()
        }
        var seen: [UInt8] = []
        while let (kind, payload) = await inbox.take() {
            #expect(kind == .stdin)
            seen += payload
        }
        await writer.value
        #expect(seen == Array(0..<50))
        #expect(await inbox.take() == nil)
    }

    @Test func discardingFreesAWaitingWriterAndReader() async throws {
        let inbox = FrameInbox()
        let reader = Task { await inbox.take() }
        try await Task.sleep(for: .milliseconds(50))
        inbox.discard()
        #expect(await reader.value == nil)
        // After discard nothing waits: a put returns at once and the frame is gone.
        await inbox.put((.stdin, [1]))
        #expect(await inbox.take() == nil)
    }
}
