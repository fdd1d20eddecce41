import Foundation

/// A TLS private key file (`[server] tls_key`, `[batch] accounting_client_key`), held to the
/// admin token file's rule: a regular file, root's (when `requireRootOwner`), with no access
/// for group or others. A key others can read lets them be this daemon or this node.
public enum PrivateKeyFile {
    public static func check(path: String, requireRootOwner: Bool = true) throws(BDockerError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw .invalidInput("key file \(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .invalidInput("key file \(path) is not a regular file (symlinks are refused)")
        }
        if requireRootOwner && st.st_uid != 0 {
            throw .invalidInput("key file \(path) must be owned by root (it is owned by uid \(st.st_uid))")
        }
        if st.st_mode & 0o077 != 0 {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw .invalidInput("key file \(path) has mode \(mode); group and others must have no access (chmod 600 \(path))")
        }
    }
}
