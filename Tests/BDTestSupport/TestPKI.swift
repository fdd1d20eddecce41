import BDCore
import Foundation

/// A certificate authority made for one test with the `openssl` command (`.requires(.openssl)`),
/// in a temp dir removed with it: the CA, the accounting daemon's certificate (for localhost and
/// 127.0.0.1) and node certificates, made the way docs/deploy.md tells an admin to. Keys are
/// mode 0600, as the daemons demand.
public final class TestPKI: @unchecked Sendable {
    // @unchecked: immutable after init.
    public static let openssl = "/usr/bin/openssl"

    public let dir: TempDir
    /// The CA's certificate: `[server] tls_client_ca` and `[batch] accounting_ca`.
    public var caCertificate: String { dir.file("ca.pem") }
    public var serverCertificate: String { dir.file("server.pem") }
    public var serverKey: String { dir.file("server.key") }

    /// A CA and the server's certificate signed by it.
    public init(name: String = "bdocker test CA") async throws {
        dir = TempDir("bdocker-pki")
        try await Self.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", dir.file("ca.key"), "-out", caCertificate, "-days", "2", "-subj", "/CN=\(name)"])
        try await issue("server", commonName: "localhost", extensions: [
            "subjectAltName = DNS:localhost, IP:127.0.0.1", "extendedKeyUsage = serverAuth"])
    }

    /// A node's certificate and key (subject CN = `node`), for `[batch] accounting_client_certificate`.
    /// With `dnsNames`, those are its subject alternative names; `commonName: false` leaves the
    /// subject without a CN.
    public func node(_ node: String, dnsNames: [String] = [], commonName: Bool = true) async throws -> (certificate: String, key: String) {
        let san = dnsNames.isEmpty ? [] : ["subjectAltName = " + dnsNames.map { "DNS:\($0)" }.joined(separator: ", ")]
        try await issue(node, subject: commonName ? "/CN=\(node)" : "/O=bdocker test node", extensions: ["extendedKeyUsage = clientAuth"] + san)
        return (dir.file("\(node).pem"), dir.file("\(node).key"))
    }

    /// `<file>.key` and `<file>.pem`, signed by this CA.
    private func issue(_ file: String, commonName: String, extensions: [String]) async throws {
        try await issue(file, subject: "/CN=\(commonName)", extensions: extensions)
    }

    private func issue(_ file: String, subject: String, extensions: [String]) async throws {
        let ext = dir.write("\(file).ext", (["basicConstraints = CA:FALSE"] + extensions).joined(separator: "\n") + "\n")
        try await Self.run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                            "-keyout", dir.file("\(file).key"), "-out", dir.file("\(file).csr"), "-subj", subject])
        try await Self.run(["x509", "-req", "-in", dir.file("\(file).csr"), "-CA", caCertificate, "-CAkey", dir.file("ca.key"),
                            "-set_serial", "\(Int.random(in: 1_000...Int(Int32.max)))", "-days", "2",
                            "-extfile", ext, "-out", dir.file("\(file).pem")])
        chmod(dir.file("\(file).key"), 0o600)
    }

    private static func run(_ arguments: [String]) async throws {
        let r = try await runCommand(openssl, arguments, environment: ["PATH": "/usr/bin:/bin"])
        guard r.status == 0 else {
            throw BDockerError.internalFault("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(r.stderr)")
        }
    }
}
