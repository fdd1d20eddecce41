import BDCore
import BDCredentials
import BDDocker
import Foundation
import NIOCore

/// `cp` between a container and the user's HOME. The host side is read and written by `tar`
/// running with the job user's uid, gid and groups (through setpriv), never by root, so a
/// symlink in HOME cannot make the daemon read or overwrite a file the user could not, and
/// copied files end up the user's. The tar stream passes through a root-only spool file.
extension WorkingNode {
    public func copy(_ request: CopyRequest) async throws(BDockerError) -> String {
        let (id, session) = try await ownedContainer(request.token, request.containerID)
        guard request.containerPath.hasPrefix("/") else {
            throw .invalidInput("the container path '\(request.containerPath)' must be absolute")
        }
        let host = try AccessPolicy.resolveInsideHome(request.hostPath, home: session.home)
        let spool = try SpoolFile()
        defer { spool.remove() }
        let docker = try engine()
        if request.hostToContainer {
            guard FileManager.default.fileExists(atPath: host) else { throw .notFound("\(request.hostPath): no such file or directory") }
            let source = URL(fileURLWithPath: host)
            let name = source.lastPathComponent
            // Into an existing directory as is; otherwise to the named path, renamed on the way.
            spool.prepare(for: session)
            try await UserTar.run(session, ["-c", "-f", spool.path, "-C", source.deletingLastPathComponent().path, "--", name])
            do {
                try await docker.putArchive(id, path: request.containerPath, tar: try spool.chunks())
            } catch .notFound, .invalidInput {
                let target = URL(fileURLWithPath: request.containerPath)
                spool.prepare(for: session)
                try await UserTar.run(session, ["-c", "-f", spool.path, "-C", source.deletingLastPathComponent().path,
                                                try UserTar.rename(name, to: target.lastPathComponent), "--", name])
                try await docker.putArchive(id, path: target.deletingLastPathComponent().path, tar: try spool.chunks())
            }
            return "copied \(request.hostPath) to \(request.containerID):\(request.containerPath)"
        }
        let archive = try await docker.getArchive(id, path: request.containerPath)
        try await spool.write(archive, for: session)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: host, isDirectory: &isDirectory), isDirectory.boolValue {
            try await UserTar.run(session, ["-x", "-f", spool.path, "-C", host, "--no-same-owner", "--no-same-permissions"])
        } else {
            let target = URL(fileURLWithPath: host)
            let name = URL(fileURLWithPath: request.containerPath).lastPathComponent
            try await UserTar.run(session, ["-x", "-f", spool.path, "-C", target.deletingLastPathComponent().path,
                                            "--no-same-owner", "--no-same-permissions",
                                            try UserTar.rename(name, to: target.lastPathComponent)])
        }
        return "copied \(request.containerID):\(request.containerPath) to \(request.hostPath)"
    }
}

/// A tar stream parked on disk: root-only directory, removed after the copy.
struct SpoolFile: Sendable {
    let directory: String
    var path: String { directory + "/archive.tar" }

    init() throws(BDockerError) {
        var template = Array((NSTemporaryDirectory() + "bdocker-copy-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw .internalFault("cannot create a spool directory: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        // The user's tar writes or reads the spool file: let it into this one directory only.
        chmod(directory, 0o711)
    }

    /// Opens the file for the user's tar to create (owned by root, writable by the user).
    func prepare(for session: UserSession) {
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        chown(path, uid_t(session.uid), gid_t(session.gid))
    }

    /// Stores the engine's tar stream for the user's tar to read.
    func write(_ archive: ArchiveStream, for session: UserSession) async throws(BDockerError) {
        prepare(for: session)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw .internalFault("cannot write the spool file \(path)") }
        defer { try? handle.close() }
        for try await chunk in archive {
            handle.write(Data(buffer: chunk))
        }
    }

    /// The file, read 1 MiB at a time as the engine takes it (not all at once into memory).
    func chunks() throws(BDockerError) -> AsyncStream<ByteBuffer> {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .internalFault("cannot read the spool file \(path)") }
        let reader = SpoolReader(handle: handle)
        return AsyncStream(unfolding: { reader.next() })
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Reads a spool file in order; used by one stream at a time.
final class SpoolReader: @unchecked Sendable {
    // @unchecked: only the one stream that owns it calls `next`, one call at a time.
    private let handle: FileHandle

    init(handle: FileHandle) { self.handle = handle }

    func next() -> ByteBuffer? {
        let data = handle.readData(ofLength: 1 << 20)
        guard !data.isEmpty else {
            try? handle.close()
            return nil
        }
        return ByteBuffer(data: data)
    }
}

/// GNU tar run as the job's user.
enum UserTar {
    static let setpriv = "/usr/bin/setpriv"
    static let tar = "/bin/tar"

    static func run(_ session: UserSession, _ arguments: [String]) async throws(BDockerError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: setpriv)
        process.arguments = ["--reuid=\(session.uid)", "--regid=\(session.gid)", "--init-groups", "--", tar] + arguments
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": session.home, "LC_ALL": "C"]
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = await withCheckedContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: -1)
            }
        }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").filter { !$0.contains("Exiting with failure status") }.prefix(3)
            .map { $0.replacingOccurrences(of: "/bin/tar: ", with: "") }.joined(separator: "; ")
        guard status == 0 else {
            if status == -1 { throw .internalFault("cannot run \(setpriv) (util-linux) to copy as the user") }
            throw .forbidden("copy failed as user \(session.user): \(message.isEmpty ? "tar exited with \(status)" : message)")
        }
    }

    /// `--transform` that renames the archive's top entry `from` to `to` (and what is below it).
    static func rename(_ from: String, to: String) throws(BDockerError) -> String {
        for name in [from, to] where name.contains(",") || name.contains("\n") || name.isEmpty || name == "." || name == ".." {
            throw .invalidInput("cannot copy to or from '\(name)' under a new name; copy into an existing directory instead")
        }
        let special = Set("\\.[]*^$")
        let pattern = from.map { special.contains($0) ? "\\\($0)" : String($0) }.joined()
        let replacement = to.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "&", with: "\\&")
        return "--transform=s,^\(pattern)\\(/\\|$\\),\(replacement)\\1,"
    }
}
