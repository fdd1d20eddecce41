import BDCore
import Foundation

/// The authorization rules that do not depend on the credentials driver.
public enum AccessPolicy {
    /// Resolves `path` (symlinks and `..` included) and accepts it only if it lies inside
    /// `home`, itself resolved, comparing whole path components: `/home/ann2` is not inside
    /// `/home/ann`. A path that does not exist yet is judged by its existing parent, so a copy
    /// destination can be new. Returns the resolved path.
    public static func resolveInsideHome(_ path: String, home: String) throws(BDockerError) -> String {
        guard path.hasPrefix("/") else {
            throw .invalidInput("'\(path)' is not an absolute path")
        }
        guard !path.contains("\0") else { throw .invalidInput("a path may not contain NUL") }
        guard let realHome = realPath(home) else {
            throw .forbidden("the job's HOME \(home) does not exist")
        }
        guard let resolved = resolveAllowingMissingLeaf(path) else {
            throw .notFound("\(path): no such directory")
        }
        guard isInside(resolved, realHome) else {
            throw .forbidden("\(path) is outside your HOME (\(home)); only paths inside it may be used")
        }
        return resolved
    }

    /// The components of `path` below HOME, judged without touching the file system: `..` is
    /// refused outright, and HOME is matched as written in passwd or as it resolves.
    public static func componentsInsideHome(_ path: String, home: String) throws(BDockerError) -> [String] {
        guard path.hasPrefix("/"), !path.contains("\0") else {
            throw .invalidInput("'\(path)' must be an absolute path inside your HOME")
        }
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !parts.contains("..") else { throw .invalidInput("'\(path)' may not contain '..'") }
        for base in [home, realPath(home)].compactMap({ $0 }) {
            let h = base.split(separator: "/").map(String.init)
            if parts.count >= h.count, Array(parts.prefix(h.count)) == h { return Array(parts.dropFirst(h.count)) }
        }
        throw .forbidden("\(path) is outside your HOME (\(home)); only paths inside it may be used")
    }

    /// True when `path` equals `root` or is below it, by whole components. Both must be
    /// normalized absolute paths.
    public static func isInside(_ path: String, _ root: String) -> Bool {
        let p = components(path), r = components(root)
        return p.count >= r.count && Array(p.prefix(r.count)) == r
    }

    static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// realpath(3) of the path, or of its parent plus the last component when the leaf does not
    /// exist. A missing leaf of `.` or `..` is not allowed to slip through unresolved.
    static func resolveAllowingMissingLeaf(_ path: String) -> String? {
        if let full = realPath(path) { return full }
        let url = URL(fileURLWithPath: path)
        let leaf = url.lastPathComponent
        guard leaf != "..", leaf != ".", leaf != "/" else { return nil }
        let parent = url.deletingLastPathComponent().path
        guard let realParent = realPath(parent) else { return nil }
        return realParent == "/" ? "/" + leaf : realParent + "/" + leaf
    }

    /// Picks the one container among `owned` that `reference` names: a full id or a unique
    /// prefix (names are matched exactly). Containers the caller does not own are not in
    /// `owned`, so they answer `notFound` exactly like ids that do not exist.
    public static func resolveContainer(_ reference: String, owned: [(id: String, names: [String])]) throws(BDockerError) -> String {
        let ref = reference.trimmingCharacters(in: .whitespaces)
        guard !ref.isEmpty else { throw .invalidInput("a container id is required (an empty prefix matches everything)") }
        if let exact = owned.first(where: { $0.id == ref || $0.names.contains(ref) || $0.names.contains("/" + ref) }) {
            return exact.id
        }
        let matches = owned.filter { $0.id.hasPrefix(ref) }
        switch matches.count {
        case 0: throw .notFound("no such container: \(ref)")
        case 1: return matches[0].id
        default:
            throw .invalidInput("container id prefix '\(ref)' is ambiguous: it matches \(matches.count) of your containers; give more characters")
        }
    }
}
