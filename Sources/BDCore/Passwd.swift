import Foundation

/// A user as the passwd database (NSS) knows it.
public struct PasswdEntry: Sendable, Equatable {
    public var name: String
    public var uid: Int
    public var gid: Int
    public var home: String

    public init(name: String, uid: Int, gid: Int, home: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    public static func lookup(name: String) -> PasswdEntry? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return PasswdEntry(name: String(cString: pwd.pw_name), uid: Int(pwd.pw_uid), gid: Int(pwd.pw_gid),
                           home: String(cString: pwd.pw_dir))
    }

    public static func lookup(uid: Int) -> PasswdEntry? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid_t(uid), &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return PasswdEntry(name: String(cString: pwd.pw_name), uid: Int(pwd.pw_uid), gid: Int(pwd.pw_gid),
                           home: String(cString: pwd.pw_dir))
    }
}

/// A group as the group database (NSS) knows it.
public enum GroupDatabase {
    /// The name of group `gid`, or nil when there is no such group.
    public static func name(gid: Int) -> String? {
        guard let id = gid_t(exactly: gid) else { return nil }
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getgrgid_r(id, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: entry.gr_name)
    }
}
