import BDCore
import BDCredentials
import BDDocker
import Foundation
import NIOCore

/// `cp` between a container and the user's HOME. The host side is read and written only by
/// `tar` running as the job's user (through setpriv), so the user's own permissions and quota
/// apply and no symlink can make root touch a file. The tar stream passes through a pipe and a
/// `TarRewriter` in the daemon: no file the user could reopen, and no header the user wrote
/// (owner, setuid bits, devices, links out of the archive) reaches the engine unchecked.
extension WorkingNode {
    public func copy(_ request: CopyRequest, caller: Caller) async throws(BDockerError) -> String {
        let (id, session) = try await ownedContainer(request.token, request.containerID, caller: caller)
        guard request.containerPath.hasPrefix("/") else {
            throw .invalidInput("the container path '\(request.containerPath)' must be absolute")
        }
        // Judged by its words only: root never resolves a user's path.
        let components = try AccessPolicy.componentsInsideHome(request.hostPath, home: session.home)
        guard !components.isEmpty else { throw .invalidInput("copy to or from a path inside your HOME, not HOME itself") }
        let host = session.home + "/" + components.joined(separator: "/")
        let tar = UserTar(session: session, limit: .seconds(Int64(copyLimits.timeoutSeconds)))
        let docker = try engine()
        if request.hostToContainer {
            let target = request.containerPath
            let into: String
            var rename: (String, String)?
            let name = components.last!
            if let stat = try await docker.statPath(id, path: target), stat.isDirectory {
                into = target
            } else {
                let url = URL(fileURLWithPath: target)
                into = url.deletingLastPathComponent().path
                rename = (name, url.lastPathComponent)
            }
            let policy = TarRewriter.Policy(uid: session.uid, gid: session.gid, rename: rename, maxBytes: copyLimits.maxBytes)
            let parent = session.home + "/" + components.dropLast().joined(separator: "/")
            try await tar.create(from: parent, name: name, policy: policy) { stream throws(BDockerError) in
                try await docker.putArchive(id, path: into, tar: stream)
            }
            audit(session, "cp \(host) to \(id.prefix(12)):\(request.containerPath)")
            return "copied \(request.hostPath) to \(request.containerID):\(request.containerPath)"
        }
        let name = URL(fileURLWithPath: request.containerPath).lastPathComponent
        let intoDirectory = try await tar.isDirectory(host)
        let policy = TarRewriter.Policy(uid: session.uid, gid: session.gid,
                                        rename: intoDirectory ? nil : (name, components.last!), maxBytes: copyLimits.maxBytes)
        let dir = intoDirectory ? host : session.home + "/" + components.dropLast().joined(separator: "/")
        let archive = try await docker.getArchive(id, path: request.containerPath)
        try await tar.extract(archive, into: dir, policy: policy)
        audit(session, "cp \(id.prefix(12)):\(request.containerPath) to \(host)")
        return "copied \(request.containerID):\(request.containerPath) to \(request.hostPath)"
    }
}

/// How big and how long a copy may be (`[server] max_copy_bytes`, `[server] timeout`).
public struct CopyLimits: Sendable {
    public var maxBytes: Int64
    public var timeoutSeconds: Int

    public init(maxBytes: Int64 = 8 << 30, timeoutSeconds: Int = 500) {
        self.maxBytes = maxBytes
        self.timeoutSeconds = timeoutSeconds
    }
}

/// GNU tar run as the job's user, with a umask of its own (the daemon's is 077).
struct UserTar {
    static let setpriv = "/usr/bin/setpriv"
    static let tar = "/bin/tar"
    let session: UserSession
    let limit: Duration

    func spawn(_ program: String, _ arguments: [String], stdin: Bool, stdout: Bool) throws(BDockerError) -> ChildProcess {
        try ChildProcess(Self.setpriv,
                         ["--reuid=\(session.uid)", "--regid=\(session.gid)", "--init-groups", "--",
                          "/bin/sh", "-c", "umask 022 && exec \"$0\" \"$@\"", program] + arguments,
                         environment: ["PATH": "/usr/bin:/bin", "HOME": session.home, "LC_ALL": "C"],
                         pipeStdin: stdin, pipeStdout: stdout)
    }

    /// Whether `path` is a directory, as the user sees it.
    func isDirectory(_ path: String) async throws(BDockerError) -> Bool {
        let child = try spawn("/usr/bin/test", ["-d", path], stdin: false, stdout: false)
        return try await child.bounded(by: limit) { () async throws(BDockerError) -> Bool in await child.wait().status == 0 }
    }

    /// Archives `parent/name` as the user and hands the rewritten stream to `upload`.
    func create(from parent: String, name: String, policy: TarRewriter.Policy,
                upload: (ArchiveUpload) async throws(BDockerError) -> Void) async throws(BDockerError) {
        let child = try spawn(Self.tar, ["-c", "-f", "-", "--format=gnu", "-C", parent, "--", name], stdin: false, stdout: true)
        let source = ArchiveUpload.Source(child: child, rewriter: TarRewriter(policy: policy))
        try await child.bounded(by: limit) { () async throws(BDockerError) in
            var uploadError: BDockerError?
            do throws(BDockerError) {
                try await upload(ArchiveUpload(source: source))
            } catch {
                uploadError = error
                child.kill()
            }
            let (status, stderr) = await child.wait()
            // The user's tar says best what was wrong with the source, unless we stopped it.
            if status != 0 && status != 128 + SIGKILL { throw Self.failure(session, status: status, stderr: stderr) }
            if let failure = source.failure { throw failure }
            if status != 0 { throw Self.failure(session, status: status, stderr: stderr) }
            if let uploadError { throw uploadError }
        }
    }

    /// Feeds the engine's archive, rewritten, to the user's tar extracting into `dir`.
    func extract(_ archive: ArchiveStream, into dir: String, policy: TarRewriter.Policy) async throws(BDockerError) {
        let child = try spawn(Self.tar, ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--no-same-permissions"],
                              stdin: true, stdout: false)
        try await child.bounded(by: limit) { () async throws(BDockerError) in
            var rewriter = TarRewriter(policy: policy)
            var failure: BDockerError?
            do throws(BDockerError) {
                for try await chunk in archive {
                    let out = try rewriter.feed(Array(buffer: chunk))
                    if !out.isEmpty, !(await child.write(out)) { break }
                }
                _ = await child.write(try rewriter.finish())
            } catch {
                failure = error
                child.kill()
            }
            child.closeStdin()
            let (status, stderr) = await child.wait()
            if let failure { throw failure }
            if status != 0 { throw Self.failure(session, status: status, stderr: stderr) }
        }
    }

    static func failure(_ session: UserSession, status: Int32, stderr: String) -> BDockerError {
        let message = stderr.split(separator: "\n").filter { !$0.contains("Exiting with failure status") }.prefix(3)
            .map { $0.replacingOccurrences(of: "/bin/tar: ", with: "").replacingOccurrences(of: "tar: ", with: "") }
            .joined(separator: "; ")
        if status == 137 && message.isEmpty { return .unavailable("copy as user \(session.user) took too long and was stopped") }
        return .forbidden("copy failed as user \(session.user): \(message.isEmpty ? "tar exited with \(status)" : message)")
    }
}

/// The user's archive as the engine reads it: pulled from tar's stdout through the rewriter,
/// one chunk per engine read, so a slow engine slows tar instead of filling memory.
struct ArchiveUpload: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    final class Source: @unchecked Sendable {
        // @unchecked: one upload iterates it, one call at a time; `failure` is read after.
        let child: ChildProcess
        var rewriter: TarRewriter
        var failure: BDockerError?
        var done = false

        init(child: ChildProcess, rewriter: TarRewriter) {
            self.child = child
            self.rewriter = rewriter
        }

        func next() async throws -> ByteBuffer? {
            while !done {
                do {
                    let bytes = try await child.read(upTo: 1 << 20)
                    let out = bytes.isEmpty ? try rewriter.finish() : try rewriter.feed(bytes)
                    if bytes.isEmpty { done = true }
                    if !out.isEmpty { return ByteBuffer(bytes: out) }
                } catch {
                    done = true
                    failure = error
                    child.kill()
                    throw error
                }
            }
            return nil
        }
    }

    let source: Source

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: Source
        mutating func next() async throws -> ByteBuffer? { try await source.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source) }
}
