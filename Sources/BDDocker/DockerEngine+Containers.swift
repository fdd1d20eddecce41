import AsyncHTTPClient
import BDCore
import Foundation
import NIOCore

extension DockerEngine {
    /// Creates (does not start) a container and returns its full id.
    public func createContainer(_ spec: ContainerSpec) async throws(BDockerError) -> String {
        let query = spec.name.map { [("name", $0)] } ?? []
        let created = try await call(.POST, "/containers/create", query: query, json: CreateContainerBody(spec))
            .decoded(CreatedContainer.self, what: "create")
        for warning in created.warnings ?? [] where !warning.isEmpty {
            logger.warning("Docker engine on creating \(created.id.prefix(12)): \(warning)")
        }
        return created.id
    }

    /// Starting a running container succeeds (the engine answers 304).
    public func start(_ id: String) async throws(BDockerError) {
        _ = try await call(.POST, "/containers/\(Self.escape(id))/start")
    }

    /// Sends SIGTERM, then SIGKILL after `timeoutSeconds`. Stopping a stopped container succeeds.
    public func stop(_ id: String, timeoutSeconds: Int = 10) async throws(BDockerError) {
        // The engine answers only once the container is down, which may take the whole grace period.
        _ = try await call(.POST, "/containers/\(Self.escape(id))/stop", query: [("t", String(timeoutSeconds))],
                           timeout: timeout + .seconds(max(timeoutSeconds, 0)))
    }

    /// Sends `signal` (a name like "TERM" or a number) to the container's main process.
    public func kill(_ id: String, signal: String) async throws(BDockerError) {
        _ = try await call(.POST, "/containers/\(Self.escape(id))/kill", query: [("signal", signal)])
    }

    /// Removes the container and its anonymous volumes, so none pile up on the node.
    /// Without `force`, removing a running container is a `.conflict`.
    public func remove(_ id: String, force: Bool) async throws(BDockerError) {
        _ = try await call(.DELETE, "/containers/\(Self.escape(id))", query: [("force", force ? "1" : "0"), ("v", "1")])
    }

    /// Waits, without a time limit, until the container stops, and returns its exit code.
    public func wait(_ id: String) async throws(BDockerError) -> Int {
        let path = "/containers/\(Self.escape(id))/wait"
        // The engine sends the head at once and the body when the container stops.
        let response = try await open(.POST, path, headTimeout: timeout)
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: Self.maxReplyBytes)
        } catch {
            throw lostConnection(error, reading: path)
        }
        let outcome = try EngineReply(status: response.status.code, body: body).decoded(WaitOutcome.self, what: "wait")
        if let message = outcome.error?.message, !message.isEmpty {
            throw .internalFault("waiting for container \(id) failed: \(message)")
        }
        return outcome.statusCode
    }

    /// `GET /containers/{id}/json`, passed through to the user as the engine wrote it.
    public func inspect(_ id: String) async throws(BDockerError) -> JSONValue {
        try await call(.GET, "/containers/\(Self.escape(id))/json").decoded(JSONValue.self, what: "inspect")
    }

    /// Containers carrying every label in `labelFilter` (and the label `havingLabel`, whatever
    /// its value); `all` includes stopped ones.
    public func list(all: Bool, labelFilter: [String: String] = [:], havingLabel: String? = nil) async throws(BDockerError) -> [ContainerSummary] {
        var query = [("all", all ? "1" : "0")]
        if !labelFilter.isEmpty || havingLabel != nil {
            let filters = ["label": labelFilter.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + (havingLabel.map { [$0] } ?? [])]
            // Encoding a map of strings cannot fail; dropping the filter silently would list other users' containers.
            query.append(("filters", String(decoding: try! JSONEncoder().encode(filters), as: UTF8.self)))
        }
        return try await call(.GET, "/containers/json", query: query).decoded([ContainerSummary].self, what: "list")
    }

    /// Streams the container's output so far, in order, split into stdout and stderr. With
    /// `follow`, goes on until the container stops — for a stopped container that is at once,
    /// after everything it ever wrote.
    public func logs(_ id: String, _ options: LogOptions = LogOptions(),
                     onOutput: @Sendable (OutputFrame) async throws(BDockerError) -> Void) async throws(BDockerError) {
        let path = "/containers/\(Self.escape(id))/logs"
        var query = [("stdout", "1"), ("stderr", "1"), ("follow", options.follow ? "1" : "0"),
                     ("timestamps", options.timestamps ? "1" : "0")]
        if let tail = options.tail { query.append(("tail", String(tail))) }
        let response = try await open(.GET, path, query: query, headTimeout: timeout)
        try await demultiplex(response.body, of: path, to: onOutput)
    }

    /// Attaches to a created container's stdout and stderr. Call it before `start`: the engine
    /// hooks the streams up before it answers, so output from the container's first instant on
    /// is kept until `AttachedOutput.stream(to:)` reads it.
    public func attach(_ id: String) async throws(BDockerError) -> AttachedOutput {
        let path = "/containers/\(Self.escape(id))/attach"
        let response = try await open(.POST, path, query: [("stream", "1"), ("stdout", "1"), ("stderr", "1")],
                                      headTimeout: timeout)
        return AttachedOutput(engine: self, path: path, body: response.body)
    }

    /// Starts `cmd` in the running container as `user` ("uid:gid"), never privileged and
    /// without a TTY or stdin, and returns the exec's id with its output stream; its exit code
    /// is `execExitCode` once the stream ended.
    public func exec(_ id: String, cmd: [String], user: String, env: [String], workingDir: String?) async throws(BDockerError)
        -> (execID: String, output: AttachedOutput) {
        struct Create: Encodable {
            var AttachStdout = true, AttachStderr = true, AttachStdin = false, Tty = false, Privileged = false
            var Cmd: [String]
            var User: String
            var Env: [String]
            var WorkingDir: String?
        }
        struct Created: Decodable { var Id: String }
        let created = try await call(.POST, "/containers/\(Self.escape(id))/exec",
                                     json: Create(Cmd: cmd, User: user, Env: env, WorkingDir: workingDir))
            .decoded(Created.self, what: "exec create")
        let path = "/exec/\(Self.escape(created.Id))/start"
        let response = try await open(.POST, path, body: .bytes(ByteBuffer(string: #"{"Detach":false,"Tty":false}"#)),
                                      contentType: "application/json", headTimeout: timeout)
        return (created.Id, AttachedOutput(engine: self, path: path, body: response.body))
    }

    /// The exit code of a finished exec.
    public func execExitCode(_ execID: String) async throws(BDockerError) -> Int {
        struct Inspected: Decodable { var ExitCode: Int?; var Running: Bool }
        let state = try await call(.GET, "/exec/\(Self.escape(execID))/json").decoded(Inspected.self, what: "exec inspect")
        guard let code = state.ExitCode, !state.Running else { throw .internalFault("exec \(execID) has no exit code yet") }
        return code
    }

    /// `path` inside the container as a tar stream (the file or the directory with its contents).
    public func getArchive(_ id: String, path: String) async throws(BDockerError) -> ArchiveStream {
        let apiPath = "/containers/\(Self.escape(id))/archive"
        let response = try await open(.GET, apiPath, query: [("path", path)], headTimeout: timeout)
        return ArchiveStream(body: response.body, lostConnection: { lostConnection($0, reading: apiPath) })
    }

    /// What `path` inside the container is: nil when it does not exist.
    public func statPath(_ id: String, path: String) async throws(BDockerError) -> ContainerPathStat? {
        let apiPath = "/containers/\(Self.escape(id))/archive"
        let response: HTTPClientResponse
        do {
            response = try await open(.HEAD, apiPath, query: [("path", path)], headTimeout: timeout)
        } catch .notFound(let message) where !message.contains("No such container") {
            return nil
        }
        guard let header = response.headers.first(name: "X-Docker-Container-Path-Stat"),
              let data = Data(base64Encoded: header),
              let stat = try? JSONDecoder().decode(ContainerPathStat.self, from: data) else {
            throw .internalFault("the engine's stat of \(path) could not be read")
        }
        return stat
    }

    /// Unpacks the tar stream `tar` into the existing directory `path` inside the container.
    /// `tar` may come from a child process; the engine answers only after the last byte, so
    /// there is no time limit. A missing `path` is `.notFound`.
    public func putArchive<Tar: AsyncSequence & Sendable>(_ id: String, path: String, tar: Tar) async throws(BDockerError)
    where Tar.Element == ByteBuffer {
        let apiPath = "/containers/\(Self.escape(id))/archive"
        let response = try await open(.PUT, apiPath, query: [("path", path)], body: .stream(tar, length: .unknown),
                                      contentType: "application/x-tar", headTimeout: nil)
        _ = try await withTimeout(timeout, doing: "PUT \(apiPath)") { () async throws(BDockerError) in
            do {
                return try await response.body.collect(upTo: Self.maxReplyBytes)
            } catch {
                throw lostConnection(error, reading: apiPath)
            }
        }
    }

    /// Feeds a multiplexed output body through an `OutputDemultiplexer` to `onOutput`.
    func demultiplex(_ body: HTTPClientResponse.Body, of path: String,
                     to onOutput: @Sendable (OutputFrame) async throws(BDockerError) -> Void) async throws(BDockerError) {
        var demultiplexer = OutputDemultiplexer()
        try await BDockerError.mapping({ lostConnection($0, reading: path) }) {
            for try await chunk in body {
                for frame in try demultiplexer.feed(chunk) {
                    try await onOutput(frame)
                }
            }
        }
        try demultiplexer.finish()
    }
}

/// The output of a container attached to before it started: everything it writes, until it stops.
public struct AttachedOutput: Sendable {
    let engine: DockerEngine
    let path: String
    let body: HTTPClientResponse.Body

    /// Streams the output to `onOutput` until the container stops. Read it once; dropping it
    /// unread closes the attachment.
    public func stream(to onOutput: @Sendable (OutputFrame) async throws(BDockerError) -> Void) async throws(BDockerError) {
        try await engine.demultiplex(body, of: path, to: onOutput)
    }
}

/// A tar stream from the engine, chunk by chunk, failing only with `BDockerError`. Iterate it once.
public struct ArchiveStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public typealias Failure = BDockerError

    let body: HTTPClientResponse.Body
    let lostConnection: @Sendable (any Error) -> BDockerError

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: body.makeAsyncIterator(), lostConnection: lostConnection)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator
        let lostConnection: @Sendable (any Error) -> BDockerError

        public mutating func next() async throws(BDockerError) -> ByteBuffer? {
            do {
                return try await base.next()
            } catch {
                throw lostConnection(error)
            }
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(BDockerError) -> ByteBuffer? {
            do {
                return try await base.next(isolation: actor)
            } catch {
                throw lostConnection(error)
            }
        }
    }
}

/// The engine's `X-Docker-Container-Path-Stat`.
public struct ContainerPathStat: Decodable, Sendable {
    public var name: String
    public var size: Int64
    /// Go's os.FileMode: the directory bit is 1 << 31.
    public var mode: UInt32
    public var linkTarget: String?

    public var isDirectory: Bool { mode & (1 << 31) != 0 }
}
