import AsyncHTTPClient
import BDCore
import Foundation
import NIOCore
import NIOSSL

/// How a client checks an https daemon and proves who it is: the CA its certificate must chain
/// to (nil: the system's trust store) and, for an accounting daemon in per-node mode, this
/// node's own certificate and key (`[batch] accounting_ca`, `accounting_client_certificate`,
/// `accounting_client_key`). The server's certificate is always verified, host name included.
public struct ClientTLS: Sendable, Hashable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// Which file a `configuration()` failure is about, so the caller can name its key.
    public struct Problem: Error, Sendable {
        public enum File: Sendable { case ca, certificate, key }
        public var file: File
        public var message: String
    }

    /// The NIOSSL configuration from the files; the key is held to `PrivateKeyFile`'s rule.
    public func configuration(requireRootOwner: Bool = geteuid() == 0) throws(Problem) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile {
            configuration.trustRoots = .certificates(try Self.certificates(caFile, .ca))
        }
        if let certificateFile, let keyFile {
            configuration.certificateChain = try Self.certificates(certificateFile, .certificate).map { .certificate($0) }
            do {
                try PrivateKeyFile.check(path: keyFile, requireRootOwner: requireRootOwner)
            } catch {
                throw Problem(file: .key, message: error.message)
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw Problem(file: .key, message: "\(keyFile) is not a PEM private key (\(error))")
            }
        }
        return configuration
    }

    static func certificates(_ path: String, _ file: Problem.File) throws(Problem) -> [NIOSSLCertificate] {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw Problem(file: file, message: "\(path) is not a PEM certificate file (\(error))")
        }
        guard !chain.isEmpty else { throw Problem(file: file, message: "\(path) holds no PEM certificate") }
        return chain
    }
}

extension HTTPClient {
    /// A `failingFast` client that speaks TLS as `tls` says, one per distinct `tls` for the
    /// life of the process (like `failingFast` itself: the one user, a working node's outbox,
    /// needs it as long as the daemon runs, and an HTTPClient must never be dropped unclosed).
    /// The files are read when it is first made; new certificates take a restart.
    public static func failingFast(tls: ClientTLS) throws(ClientTLS.Problem) -> HTTPClient {
        try TLSClients.shared.client(for: tls)
    }
}

/// The process's TLS clients, by their settings.
private final class TLSClients: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    static let shared = TLSClients()
    private let lock = NSLock()
    private var clients: [ClientTLS: HTTPClient] = [:]

    func client(for tls: ClientTLS) throws(ClientTLS.Problem) -> HTTPClient {
        lock.lock()
        defer { lock.unlock() }
        if let client = clients[tls] { return client }
        var configuration = HTTPClient.Configuration.failingFast
        configuration.tlsConfiguration = try tls.configuration()
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        clients[tls] = client
        return client
    }
}
