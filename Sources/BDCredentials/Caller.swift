import BDCore

/// Who is on the other end of a request, as the kernel says, not as the request says.
/// On the daemon's unix socket that is the peer's uid (SO_PEERCRED); over TCP nobody knows.
public enum Caller: Sendable, Equatable, CustomStringConvertible {
    /// A process on this node, connected through the unix socket.
    case local(uid: Int, pid: Int)
    /// A TCP peer: no uid can be trusted.
    case network

    public var isRoot: Bool {
        if case .local(let uid, _) = self { return uid == 0 }
        return false
    }

    public var description: String {
        switch self {
        case .local(let uid, let pid): return "uid \(uid) (pid \(pid))"
        case .network: return "a TCP client"
        }
    }
}

extension AccessPolicy {
    /// configure, clean and notify change root's state on the node: only root on the unix
    /// socket may call them. No secret travels, so none can leak to whoever listens on a port.
    public static func requireRoot(_ caller: Caller, for what: String) throws(BDockerError) {
        guard caller.isRoot else {
            throw .forbidden("\(what) is accepted only from root on the daemon's unix socket, not from \(caller)")
        }
    }

    /// A user token speaks only for the job's own user: presented by another local uid it is
    /// refused, so a copied token is useless. Root may act for any job (it could anyway); a
    /// TCP caller, where the site enabled TCP, is judged by the token alone.
    public static func requireTokenOwner(_ session: UserSession, _ caller: Caller) throws(BDockerError) {
        guard case .local(let uid, _) = caller, uid != 0, uid != session.uid else { return }
        throw .unauthorized("the token is not valid for uid \(uid) (a job's token works only for the job's user)")
    }
}

extension TokenController {
    /// The session of a user token presented by `caller`: the admin token is refused, and a
    /// token is valid only for its job's user.
    public func requireUserToken(_ presented: String?, caller: Caller) async throws(BDockerError) -> UserSession {
        let session = try await requireUserToken(presented)
        try AccessPolicy.requireTokenOwner(session, caller)
        return session
    }
}
