import BDConfig
import BDCore
import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// The accounting daemon's TLS (`[server] tls_certificate`, `tls_key`, `tls_client_ca`): which
/// files, and the checked NIOSSL context made from them. With a client CA it is the
/// per-node mode: a client without a certificate that CA signed fails the handshake, and the
/// certificate's name is the node its records must come from (`NodeIdentity`).
public struct ServerTLS: Sendable, Equatable {
    public var certificate: String
    public var key: String
    public var clientCA: String?
    /// The configuration file, so errors name it.
    public var file: String

    /// Nil when the settings ask for plain HTTP.
    public init?(settings: Settings) {
        guard let certificate = settings.server.tlsCertificate, let key = settings.server.tlsKey else { return nil }
        self.certificate = certificate
        self.key = key
        self.clientCA = settings.server.tlsClientCA
        self.file = settings.file
    }

    public var requiresClientCertificates: Bool { clientCA != nil }

    /// Reads and checks the files (the key root's and private, as the admin token file), each
    /// failure naming its key, and makes the context connections use. Called before the daemon
    /// listens, on SIGHUP (`LiveTLSContext`) and by `--check-config`.
    public func context(requireRootOwner: Bool = geteuid() == 0) throws(ConfigError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw problem("tls_certificate", certificate, "not a PEM certificate file (\(error))")
        }
        guard !chain.isEmpty else { throw problem("tls_certificate", certificate, "holds no PEM certificate") }
        do {
            try PrivateKeyFile.check(path: key, requireRootOwner: requireRootOwner)
        } catch {
            throw problem("tls_key", key, error.message)
        }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw problem("tls_key", key, "not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCA {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(clientCA)
            } catch {
                throw problem("tls_client_ca", clientCA, "not a PEM certificate file (\(error))")
            }
            guard !roots.isEmpty else { throw problem("tls_client_ca", clientCA, "holds no PEM certificate") }
            configuration.trustRoots = .certificates(roots)
            // On a server this requires a client certificate that chains to `roots`; the
            // name in it is checked per record, not against a host name.
            configuration.certificateVerification = .noHostnameVerification
        }
        // Made here, so a key that does not match its certificate stops the daemon now.
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw problem("tls_key", key, "does not go with \(certificate) (\(error))")
        }
    }

    private func problem(_ key: String, _ path: String, _ text: String) -> ConfigError {
        ConfigError(file: file, section: "server", key: key, "\(path): \(text)")
    }
}

/// The node a verified client certificate names: its DNS subject alternative names, as
/// RFC 6125 prefers, then the subject's common name. A wildcard (`*.cluster`) names no node:
/// a record must come from one host. `name`, the first of them, is stored as the records'
/// `sent_by`; a record's host may be any of `names` (without regard to case).
public struct NodeIdentity: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let names: [String]

    public init?(names: [String]) {
        let usable = names.filter { !$0.isEmpty && !$0.contains("*") }
        guard let first = usable.first else { return nil }
        name = first
        self.names = usable.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    }

    public func names(_ host: String) -> Bool {
        names.contains { $0.lowercased() == host.lowercased() }
    }

    public var description: String { names.count == 1 ? name : names.joined(separator: ", ") }

    /// DNS SANs first, then the CN.
    static func of(_ certificate: NIOSSLCertificate) -> NodeIdentity? {
        var names: [String] = []
        for alternative in certificate._subjectAlternativeNames() where alternative.nameType == .dnsName {
            names.append(String(decoding: alternative.contents, as: UTF8.self))
        }
        if let commonName = certificate.subjectName.first(where: { $0.type == .commonName })?.value { names.append(commonName) }
        return NodeIdentity(names: names)
    }
}

/// Per-node mode: when the TLS handshake completes, records the node the client's verified
/// certificate names (`NodeIdentity`) for the connection (`PeerDirectory.node(of:)`), where the
/// request context finds it. A certificate naming no node gets none, and its records are refused.
final class NodeIdentityReader: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            // On the channel's event loop, as NIOSSL requires; before any request is read.
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            if let node = certificate.flatMap(NodeIdentity.of) {
                PeerDirectory.shared.setNode(node, of: context.channel)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The TLS context a listener hands each new connection, replaceable while the daemon runs:
/// SIGHUP reads the certificate, key and client CA again (`reload`), so a renewed certificate
/// needs no restart. Connections already open keep the context they began with. A set of files
/// that fails the start-up checks is refused and the context before stays.
public final class LiveTLSContext: Sendable {
    public let tls: ServerTLS
    private let context: Mutex<NIOSSLContext>

    public init(_ tls: ServerTLS) throws(ConfigError) {
        self.tls = tls
        context = Mutex(try tls.context())
    }

    var current: NIOSSLContext { context.withLock { $0 } }

    public func reload() throws(ConfigError) {
        let fresh = try tls.context()
        context.withLock { $0 = fresh }
    }
}

/// Hummingbird's `TLSChannel`, except that each connection takes the listener's current
/// context (`LiveTLSContext`) rather than one fixed at start.
struct LiveTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    typealias Value = BaseChannel.Value
    let live: LiveTLSContext
    var baseChannel: BaseChannel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = live.current
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            baseChannel.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: BaseChannel.Value, logger: Logger) async {
        await baseChannel.handle(value: value, logger: logger)
    }
}

extension LiveTLSChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { baseChannel.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1 with `configuration` behind TLS whose context `live` may replace between connections.
    static func http1(configuration: HTTP1Channel.Configuration, liveTLS live: LiveTLSContext) -> HTTPServerBuilder {
        .init { responder in
            LiveTLSChannel(live: live, baseChannel: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}
