import BDConfig
import BDCore
import BDCredentials
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// Request context of both daemons: Hummingbird's core storage plus who the kernel says the
/// peer is (`Caller`), looked up from the connection's `PeerGuard`.
public struct BDContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let caller: Caller
    /// The connection, for the one route that holds it open (`PeerDirectory.hold`).
    let channel: any Channel
    /// The node named by the client certificate the TLS handshake verified (per-node mode,
    /// `ServerTLS`); nil on any other connection.
    public let node: NodeIdentity?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        // A connection the guard never saw (none should exist) gets the least privilege.
        caller = PeerDirectory.shared.caller(of: source.channel) ?? .network
        node = PeerDirectory.shared.node(of: source.channel)
    }
}

/// Where a daemon listens and how many connections and how much idling it tolerates.
public struct Listener: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }

    public var address: Address
    /// A connection with no complete request head for this long is closed: it bounds idle
    /// keep-alives and slow header writers alike.
    public var idleTimeout: Duration
    /// Open connections one local uid (or all TCP peers together) may hold.
    public var maxConnectionsPerUser: Int
    /// Serves only `/health`, `/ready` and `/metrics` (`[server] metrics_port`).
    public var monitoringOnly: Bool
    /// TLS on this (TCP) listener; nil: plain HTTP.
    public var tls: ServerTLS?

    public init(_ address: Address, idleTimeout: Duration = .seconds(30), maxConnectionsPerUser: Int = 64,
                monitoringOnly: Bool = false, tls: ServerTLS? = nil) {
        self.address = address
        self.idleTimeout = idleTimeout
        self.maxConnectionsPerUser = maxConnectionsPerUser
        self.monitoringOnly = monitoringOnly
        self.tls = tls
    }

    public var description: String {
        switch address {
        case .unix(let path): return path
        case .tcp(let host, let port): return "\(host):\(port)"
        }
    }

    /// The Hummingbird application serving `router` here. `onListening` gets the bound TCP
    /// port (0 for a socket); the socket is opened to every local user once it exists, because
    /// who may do what is decided per request from the peer's uid. With `tls`, connections use
    /// `liveTLS` (which SIGHUP may replace), or a context of their own made from the files.
    public func application(router: Router<BDContext>, services: [any Service] = [], logger: Logger, liveTLS: LiveTLSContext? = nil,
                            onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws(BDockerError) -> some ApplicationProtocol {
        let bind: BindAddress
        switch address {
        case .unix(let path):
            try Self.prepareSocketDirectory(for: path)
            bind = .unixDomainSocket(path: path)
        case .tcp(let host, let port):
            bind = .hostname(host, port: port)
        }
        let limit = maxConnectionsPerUser
        let guardLogger = logger
        let scope = PeerDirectory.Scope()
        let identifiesNodes = tls?.requiresClientCertificates == true
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: Self.connectionHandlers(limit: limit, scope: scope, logger: guardLogger,
                                                               identifiesNodes: identifiesNodes),
            idleTimeout: TimeAmount(idleTimeout))
        var server = HTTPServerBuilder.http1(configuration: http1)
        if let tls {
            // NIOSSL's handler goes first on each connection, then HTTP and the guard.
            let live = if let liveTLS { liveTLS } else { try Self.liveContext(tls) }
            server = .http1(configuration: http1, liveTLS: live)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: bind, serverName: "bdockerd"),
            services: services,
            onServerRunning: { channel in
                if case .unix(let path) = address { chmod(path, 0o666) }
                await onListening(channel.localAddress?.port ?? 0)
            },
            logger: logger)
    }

    /// The context of a TLS listener, its files' problems as this module's errors.
    static func liveContext(_ tls: ServerTLS) throws(BDockerError) -> LiveTLSContext {
        do {
            return try LiveTLSContext(tls)
        } catch {
            throw .invalidInput(error.description)
        }
    }

    /// Each connection's own handlers (made anew for every connection): the peer guard, and in
    /// per-node mode the reader of the client certificate's name.
    static func connectionHandlers(limit: Int, scope: PeerDirectory.Scope, logger: Logger,
                                   identifiesNodes: Bool) -> [any RemovableChannelHandler] {
        let peerGuard = PeerGuard(limit: limit, scope: scope, logger: logger)
        return identifiesNodes ? [peerGuard, NodeIdentityReader()] : [peerGuard]
    }

    /// The socket's directory must be root's and writable by root only, so no user can put
    /// anything at the socket's path; a missing one is made 0755.
    static func prepareSocketDirectory(for socket: String) throws(BDockerError) {
        let dir = (socket as NSString).deletingLastPathComponent
        guard socket.hasPrefix("/"), !dir.isEmpty else { throw .invalidInput("the socket path \(socket) must be absolute") }
        if mkdir(dir, 0o755) == 0 { chmod(dir, 0o755) }
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .invalidInput("the socket directory \(dir) is missing or not a directory")
        }
        if geteuid() == 0 {
            guard st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                throw .forbidden("the socket directory \(dir) must be owned by root and writable by root only "
                    + "(it is uid \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8)))")
            }
        }
    }
}

/// The peers of every open connection, by channel, and how many each uid holds on each
/// listener (a listener's limit is its own, so two daemons in one process never share one).
final class PeerDirectory: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    static let shared = PeerDirectory()

    /// One listener's count of connections: compared by identity.
    final class Scope: Sendable {}

    private struct CountKey: Hashable {
        var scope: ObjectIdentifier
        var peer: Int
    }

    private let lock = NSLock()
    private var callers: [ObjectIdentifier: (caller: Caller, key: CountKey)] = [:]
    private var counts: [CountKey: Int] = [:]
    /// Connections an attached run holds open (see `PeerGuard.close`).
    private var held: Set<ObjectIdentifier> = []
    /// Node names from verified client certificates (`NodeIdentityReader`).
    private var nodes: [ObjectIdentifier: NodeIdentity] = [:]

    /// Keeps the connection from being closed as idle while its request body, an attached
    /// run's stdin, stays silent; only for a caller whose token was checked.
    func hold(_ channel: any Channel) {
        lock.lock()
        defer { lock.unlock() }
        // Only a connection the guard admitted (and will forget when it closes) is held.
        if callers[ObjectIdentifier(channel)] != nil { held.insert(ObjectIdentifier(channel)) }
    }

    func releaseHold(_ channel: any Channel) {
        lock.lock()
        defer { lock.unlock() }
        held.remove(ObjectIdentifier(channel))
    }

    func isHeld(_ channel: any Channel) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return held.contains(ObjectIdentifier(channel))
    }

    /// Records the connection unless its user already holds `limit` on `scope`; false means refused.
    func admit(_ channel: any Channel, as caller: Caller, limit: Int, scope: Scope) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let key = CountKey(scope: ObjectIdentifier(scope), peer: Self.countKey(caller))
        guard counts[key, default: 0] < limit else { return false }
        counts[key, default: 0] += 1
        callers[ObjectIdentifier(channel)] = (caller, key)
        return true
    }

    func setNode(_ node: NodeIdentity, of channel: any Channel) {
        lock.lock()
        defer { lock.unlock() }
        // Only for a connection the guard admitted: `release` forgets it with the rest.
        if callers[ObjectIdentifier(channel)] != nil { nodes[ObjectIdentifier(channel)] = node }
    }

    func node(of channel: any Channel) -> NodeIdentity? {
        lock.lock()
        defer { lock.unlock() }
        return nodes[ObjectIdentifier(channel)]
    }

    func release(_ channel: any Channel) {
        lock.lock()
        defer { lock.unlock() }
        held.remove(ObjectIdentifier(channel))
        nodes.removeValue(forKey: ObjectIdentifier(channel))
        guard let entry = callers.removeValue(forKey: ObjectIdentifier(channel)) else { return }
        counts[entry.key, default: 1] -= 1
        if counts[entry.key] == 0 { counts[entry.key] = nil }
    }

    func caller(of channel: any Channel) -> Caller? {
        lock.lock()
        defer { lock.unlock() }
        return callers[ObjectIdentifier(channel)]?.caller
    }

    /// Root is never limited out of its own daemon; TCP peers share one count.
    private static func countKey(_ caller: Caller) -> Int {
        switch caller {
        case .local(let uid, _): return uid
        case .network: return -1
        }
    }
}

/// First handler of every connection: asks the kernel who the peer is (SO_PEERCRED on the
/// unix socket), refuses a user's connection beyond the per-user limit, and forgets the
/// connection when it closes.
final class PeerGuard: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used only on its channel's event loop.
    typealias InboundIn = Any
    typealias OutboundIn = Any

    /// `struct ucred` (pid, uid, gid), declared here because Glibc hides it behind _GNU_SOURCE.
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    let limit: Int
    let scope: PeerDirectory.Scope
    let logger: Logger
    private var admitted = false
    private var channel: (any Channel)?

    init(limit: Int, scope: PeerDirectory.Scope, logger: Logger) {
        self.limit = limit
        self.scope = scope
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
    }

    /// Hummingbird closes a connection whose request has been silent for `idle_timeout`, body
    /// included, with a close that has no promise. An attached run's body is the user's stdin
    /// and may rightly stay silent for hours, so while the run holds its connection (its token
    /// checked, `PeerDirectory.hold`) that close is dropped; the hold ends before the reply
    /// does, and the idle rule applies again from there. Every other close passes.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, promise == nil, PeerDirectory.shared.isHeld(context.channel) {
            return
        }
        context.close(mode: mode, promise: promise)
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard channel == nil else { return }
        let channel = context.channel
        self.channel = channel
        let caller = Self.caller(of: channel)
        if PeerDirectory.shared.admit(channel, as: caller, limit: caller.isRoot ? Int.max : limit, scope: scope) {
            admitted = true
        } else {
            logger.warning("refused a connection from \(caller): it already holds \(limit) open connections")
            context.close(promise: nil)
        }
    }

    private func forget() {
        if admitted, let channel { PeerDirectory.shared.release(channel) }
        admitted = false
    }

    /// The kernel's word on a unix-socket peer; `.network` for anything else or on failure.
    static func caller(of channel: any Channel) -> Caller {
        guard case .unixDomainSocket = channel.localAddress, let provider = channel as? any SocketOptionProvider else {
            return .network
        }
        var caller = Caller.network
        // On the channel's own event loop the option is read at once and the callback runs inline.
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        future.assumeIsolated().whenSuccess { creds in caller = .local(uid: Int(creds.uid), pid: Int(creds.pid)) }
        return caller
    }
}
