import Foundation

/// The per-job token file in the user's HOME: `<HOME>/<token_client_file>_<JOB_ID>[.<TASK_ID>]`.
/// Root writes and removes it in the prolog and epilog, so every step refuses to follow a
/// symlink or reuse a file the user planted.
public enum TokenFile {
    public static func path(home: String, clientFile: String, jobID: String, taskID: String?) -> String {
        var name = "\(clientFile)_\(jobID)"
        if let taskID { name += ".\(taskID)" }
        return (home as NSString).appendingPathComponent(name)
    }

    /// SGE sets SGE_TASK_ID to "undefined" outside array jobs.
    public static func taskID(fromEnvironment value: String?) -> String? {
        guard let value, !value.isEmpty, value != "undefined" else { return nil }
        return value
    }

    /// The job the environment names, as its token file is named: Slurm's (`SLURM_JOB_ID`; an
    /// array task as `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID`, like SGE's job.task) or
    /// else Grid Engine's (`JOB_ID`, `SGE_TASK_ID`). Slurm's first: Slurm sets its own
    /// variables in every job, while `JOB_ID` may just be inherited from the submitting shell.
    public static func job(fromEnvironment env: [String: String]) -> (id: String, task: String?)? {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let slurm = value("SLURM_JOB_ID") {
            if let array = value("SLURM_ARRAY_JOB_ID"), let task = value("SLURM_ARRAY_TASK_ID") { return (array, task) }
            return (slurm, nil)
        }
        guard let job = value("JOB_ID") else { return nil }
        return (job, taskID(fromEnvironment: env["SGE_TASK_ID"]))
    }

    /// Creates the file with O_EXCL|O_NOFOLLOW (an existing file or symlink is refused, never
    /// followed), writes the token, then gives it to the user with mode 0600.
    public static func create(path: String, token: String, uid: Int, gid: Int) throws(BDockerError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let err = errno
            if err == EEXIST {
                throw .conflict("token file \(path) already exists (or is a symlink); refusing to overwrite it. "
                    + "Remove it if it is stale.")
            }
            throw .internalFault("cannot create token file \(path): \(String(cString: strerror(err)))")
        }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fchown(fd, uid_t(uid), gid_t(gid)) == 0, fchmod(fd, 0o600) == 0, fsync(fd) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(path)
            throw .internalFault("cannot write token file \(path): \(message)")
        }
    }

    /// Reads a token file without following a symlink; when `expectedOwner` is given the file
    /// must belong to that uid (root reading a file in a user's HOME).
    public static func read(path: String, expectedOwner: Int? = nil) throws(BDockerError) -> String {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT {
                throw .notFound("no token file \(path); give the token with --token or $BDOCKER_TOKEN")
            }
            if err == ELOOP { throw .forbidden("token file \(path) is a symlink; refusing to follow it") }
            throw .forbidden("cannot read token file \(path): \(String(cString: strerror(err)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size < 4096 else {
            throw .forbidden("token file \(path) is not a small regular file")
        }
        if let expectedOwner, Int(st.st_uid) != expectedOwner {
            throw .forbidden("token file \(path) is owned by uid \(st.st_uid), not the job's user (uid \(expectedOwner))")
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw .invalidInput("token file \(path) is empty") }
        let token = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw .invalidInput("token file \(path) is empty") }
        return token
    }

    /// Removes the job's token file as root without trusting it: a symlink is removed itself,
    /// never followed, and a directory planted there is left alone.
    public static func remove(path: String) {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else { return }
        unlink(path)
    }
}
