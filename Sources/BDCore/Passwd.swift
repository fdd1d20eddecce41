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
