import BDClient
import BDCore
import BDDocker
import BDTestSupport
import Foundation
import Glibc
import Logging
import Testing

/// A streamed reply is read from the engine only as fast as the client reads it: a container
/// writing 1 GiB to a client that reads slowly must not grow bdockerd's memory.
@Suite("Stream back-pressure", .serialized, .requires(.root, .testUsers, .dockerEngine))
struct StreamBackPressureTests {
    /// bdockerd's resident memory, from /proc.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return nil }
        return kib << 10
    }

    @Test(.timeLimit(.minutes(2))) func aSlowClientKeepsTheDaemonsMemoryBounded() async throws {
        let env = TestEnvironment.load()
        let engineURL = env["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock"
        let image = env["BDOCKER_TEST_IMAGE"] ?? "127.0.0.1:5055/busybox:latest"
        // No cgroups: memory of the daemon is all this is about.
        let config = try TestConfig(replacing: ["base_url = unix:///var/run/docker.sock": "base_url = \(engineURL)",
                                                "enable_cgroups = true": "enable_cgroups = false"])
        let user = try testUser()
        let engine = try DockerEngine(baseURL: engineURL, logger: Logger(label: "test"))
        try await engine.pull(image)

        let daemon = try await startBdockerd(config)
        let client = DaemonClient(endpoint: config.endpoint)
        let job = "bp\(Int.random(in: 100_000...999_999))"
        var token: String?
        var failure: (any Error)?
        do {
            token = try await client.call(.POST, "/configuration", body: ConfigureRequest(
                adminToken: config.adminToken,
                userCredentials: UserCredentials(user: user.name, uid: user.uid, gid: user.gid, home: user.home, job: JobInfo(id: job))))
            try await slowlyRead(daemon: daemon.processIdentifier, socket: config.socketPath, token: try #require(token),
                                 image: image, engine: engine, job: job)
        } catch {
            failure = error
        }
        // Clean removes the job's containers, the running one too, also after a failure.
        if let token {
            let cleaned: String? = try? await client.call(.DELETE, "/clean", body: CleanRequest(adminToken: config.adminToken, token: token))
            if cleaned == nil { failure = failure ?? BDockerError.internalFault("clean of job \(job) failed") }
        }
        for left in (try? await engine.list(all: true, labelFilter: ["bdocker.job": job])) ?? [] {
            try? await engine.remove(left.id, force: true)
        }
        daemon.terminate()
        daemon.waitUntilExit()
        if let failure { throw failure }
    }

    /// Runs a container writing 1 GiB through `PUT /run` on a raw connection, reads 16 KiB every
    /// 50 ms (about 3 MiB in 10 s) while sampling the daemon's RSS, then hangs up.
    func slowlyRead(daemon pid: Int32, socket: String, token: String, image: String, engine: DockerEngine, job: String) async throws {
        let baseline = try #require(Self.residentBytes(pid))
        let connection = try RawConnection(socket: socket)
        let body = try JSONEncoder().encode(RunRequest(token: token, imageID: image,
                                                       script: ["sh", "-c", "dd if=/dev/zero bs=1M count=1024 2>/dev/null | tr '\\0' x"],
                                                       detach: false, workingDir: nil, volumes: []))
        try connection.send("PUT /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            + "Content-Length: \(body.count)\r\n\r\n" + String(decoding: body, as: UTF8.self))
        var received = 0, peak = baseline
        var head = Data()
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(10) {
            let chunk = try connection.read(upTo: 16 << 10)
            if received < 256 { head.append(chunk) }
            received += chunk.count
            peak = max(peak, Self.residentBytes(pid) ?? 0)
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 200"), "\(String(decoding: head.prefix(200), as: UTF8.self))")
        // The stream flows (how much depends on the machine's load; 16 KiB reads every 50 ms
        // give at most ~3 MiB): what matters is that it moves while the daemon stays small.
        #expect(received > 64 << 10, "only \(received) bytes of the stream arrived")
        let containers = try await engine.list(all: true, labelFilter: ["bdocker.job": job])
        #expect(containers.count == 1)
        print("stream back-pressure: daemon RSS \(baseline >> 20) MiB before, peak \(peak >> 20) MiB while \(received >> 10) KiB were read")
        #expect(peak < baseline + 64 << 20, "the daemon grew from \(baseline >> 20) MiB to \(peak >> 20) MiB for a slow client")

        // A client that goes away stops the stream, not the container. The engine holds the
        // container's writes while its attached reader is slow (its json log barely grows), so
        // once the daemon lets go of the attachment the log grows fast again.
        let id = try #require(containers.first?.id)
        guard case .object(let info) = try await engine.inspect(id), case .string(let logPath)? = info["LogPath"] else {
            Issue.record("the engine's inspect has no LogPath")
            return
        }
        func logSize() -> Int { ((try? FileManager.default.attributesOfItem(atPath: logPath))?[.size] as? Int) ?? 0 }
        let atClose = logSize()
        connection.close()
        let closed = ContinuousClock.now
        while logSize() < atClose + 16 << 20 && ContinuousClock.now - closed < .seconds(10) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(logSize() >= atClose + 16 << 20, "the container's output stayed held after the client went away (log \(atClose) -> \(logSize()) bytes)")
        if case .object(let info) = try await engine.inspect(id), case .object(let state)? = info["State"] {
            #expect(state["Running"] == .bool(true) || state["ExitCode"] == .int(0), "the container was stopped when its client went away: \(state)")
        }
        #expect((Self.residentBytes(pid) ?? 0) < baseline + 64 << 20)
    }
}

/// An HTTP/1.1 client on a unix socket that reads only when told to, so the daemon meets a slow
/// reader. The receive buffer is kept small so the kernel does not read ahead for it.
final class RawConnection {
    let fd: Int32

    init(socket path: String) throws {
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BDockerError.internalFault("socket: \(String(cString: strerror(errno)))") }
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw BDockerError.invalidInput("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw BDockerError.unavailable("connect \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close() }

    private var closed = false

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard n > 0 else { throw BDockerError.unavailable("write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// What has arrived, up to `count` bytes; waits at most a second for something.
    func read(upTo count: Int) throws -> Data {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 1000) > 0 else { return Data() }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
        guard n >= 0 else { throw BDockerError.unavailable("read: \(String(cString: strerror(errno)))") }
        return Data(buffer.prefix(n))
    }
}
