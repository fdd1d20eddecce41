import Foundation

/// Reads the admin token file (`[credentials] admin_token_file`), which both the daemon and the
/// root client read. A file that is not a regular file, not owned by root (when
/// `requireRootOwner`), or accessible to group or others is refused.
public enum AdminTokenFile {
    public static func read(path: String, requireRootOwner: Bool = true) throws(BDockerError) -> String {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw .invalidInput("admin token file \(path): \(String(cString: strerror(errno))) "
                + "([credentials] admin_token_file; tools/install.sh creates it)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .invalidInput("admin token file \(path) is not a regular file (symlinks are refused)")
        }
        if requireRootOwner && st.st_uid != 0 {
            throw .invalidInput("admin token file \(path) must be owned by root (it is owned by uid \(st.st_uid))")
        }
        if st.st_mode & 0o077 != 0 {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw .invalidInput("admin token file \(path) has mode \(mode); group and others must have no access (chmod 600 \(path))")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalidInput("cannot read admin token file \(path): \(error.localizedDescription)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
