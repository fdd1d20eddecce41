import AsyncHTTPClient
import BDAPI
import BDAccounting
import BDClient
import BDConfig
import BDCredentials
import BDCore
import BDStore
import BDTestSupport
import BDWorkingNode
import Foundation
import GRDB
import Logging
import Testing

/// The accounting daemon over TLS, in process, with a CA made for the test: who gets through,
/// and in per-node mode which records each node may write and how the sender is stored.
@Suite("Accounting daemon over TLS", .requires(.openssl))
struct AccountingTLSTests {
    let files = TempDir("bdocker-acct-tls")

    /// An accounting config with TLS from `pki`, per-node when `perNode`.
    func config(_ pki: TestPKI, perNode: Bool) throws -> TestConfig {
        var replacing = [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(files.file("bdocker_accounting"))",
            "# tls_certificate = /etc/bdocker/tls/accounting.pem": "tls_certificate = \(pki.serverCertificate)",
            "# tls_key = /etc/bdocker/tls/accounting.key": "tls_key = \(pki.serverKey)",
        ]
        if perNode { replacing["# tls_client_ca = /etc/bdocker/tls/ca.pem"] = "tls_client_ca = \(pki.caCertificate)" }
        return try TestConfig(role: .accounting, replacing: replacing)
    }

    /// The daemon as `bdockerd` builds it from `config`, listening with its TLS on a free port.
    func withDaemon(_ config: TestConfig, _ body: (_ port: Int, BDockerDatabase) async throws -> Void) async throws {
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let tls = try #require(Daemon.listeners(for: config.settings).first?.tls)
        let server = try await RunningDaemon.start(router: try daemon.router(), tls: tls)
        let port = try #require(Int(server.endpoint.split(separator: ":").last ?? ""))
        do {
            try await body(port, daemon.database)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func client(_ port: Int, _ tls: ClientTLS?, host: String = "127.0.0.1") throws -> DaemonClient {
        guard let tls else { return DaemonClient(endpoint: "http://\(host):\(port)", timeoutSeconds: 10) }
        return DaemonClient(endpoint: "https://\(host):\(port)", timeoutSeconds: 10, http: try .failingFast(tls: tls))
    }

    func send(_ client: DaemonClient, _ config: TestConfig, host: String, job: Int) async throws(BDockerError) -> AccountingReceipt {
        try await client.call(.PUT, "/set_accounting", body: SetAccountingRequest(
            adminToken: config.adminToken, accounting: SampleAccounting.record(job: job, host: host).line()))
    }

    /// Each stored record's host and sender.
    func stored(_ database: BDockerDatabase) async throws -> [[String?]] {
        try await database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT hostname, sent_by FROM records ORDER BY id").map { [$0[0], $0[1]] }
        }
    }

    @Test func aClientTrustingTheCADeliversAndOthersCannot() async throws {
        let pki = try await TestPKI()
        let stranger = try await TestPKI(name: "another CA")
        let config = try config(pki, perNode: false)
        try await withDaemon(config) { port, database in
            // Verified against the test CA, by IP and by name (both are in the certificate).
            let receipt = try await send(try client(port, ClientTLS(caFile: pki.caCertificate)), config, host: "node1", job: 1)
            #expect(receipt.new)
            _ = try await send(try client(port, ClientTLS(caFile: pki.caCertificate), host: "localhost"), config, host: "node1", job: 2)
            // Without client certificates nobody is named: the admin token alone vouches.
            #expect(try await stored(database) == [["node1", nil], ["node1", nil]])

            // A client that trusts another CA, or only the system's, refuses the daemon.
            for tls in [ClientTLS(caFile: stranger.caCertificate), ClientTLS()] {
                let distrusting = try client(port, tls)
                let error = await failure { () async throws(BDockerError) in
                    try await send(distrusting, config, host: "node1", job: 3)
                }
                #expect(error?.httpStatus == 503, "\(String(describing: error))")
                #expect(error?.message.contains("cannot reach") == true, "\(String(describing: error))")
            }
            // Plain HTTP to the TLS port gets no HTTP answer.
            let plainClient = try client(port, nil)
            let plain = await failure { () async throws(BDockerError) in try await send(plainClient, config, host: "node1", job: 4) }
            #expect(plain != nil)
            #expect(plain?.httpStatus != 200)
            #expect(try await stored(database).count == 2)
        }
    }

    @Test func perNodeModeStoresTheSenderAndKeepsEachNodeToItsOwnRecords() async throws {
        let pki = try await TestPKI()
        let node1 = try await pki.node("node1")
        let config = try config(pki, perNode: true)
        try await withDaemon(config) { port, database in
            let asNode1 = try client(port, ClientTLS(caFile: pki.caCertificate, certificateFile: node1.certificate, keyFile: node1.key))
            // Its own record (the host compared without regard to case): stored, sender named.
            #expect(try await send(asNode1, config, host: "node1", job: 1).new)
            #expect(try await send(asNode1, config, host: "NODE1", job: 2).new)
            #expect(try await stored(database) == [["node1", "node1"], ["NODE1", "node1"]])

            // Another node's record: 403 (permanent, so an outbox keeps it as rejected), nothing stored.
            let other = await failure { () async throws(BDockerError) in try await send(asNode1, config, host: "node2", job: 3) }
            #expect(other?.httpStatus == 403, "\(String(describing: other))")
            #expect(other?.isPermanent == true)
            #expect(other?.message.contains("node2") == true && other?.message.contains("node1") == true)
            let structured = await failure { () async throws(BDockerError) -> AccountingReceipt in
                try await asNode1.call(.PUT, "/accounting", body: AccountingRecordRequest(
                    adminToken: config.adminToken, record: SampleAccounting.record(job: 4, host: "node2")))
            }
            #expect(structured?.httpStatus == 403)
            // In a batch, the other node's line alone is refused.
            let batch: AccountingBatchReceipt = try await asNode1.call(.PUT, "/set_accounting_batch", body: AccountingBatchRequest(
                adminToken: config.adminToken, lines: [SampleAccounting.record(job: 5, host: "node2").line(),
                                                       SampleAccounting.record(job: 6, host: "node1").line()]))
            #expect(batch.items.map(\.statusCode) == [403, 200])
            #expect(try await stored(database) == [["node1", "node1"], ["NODE1", "node1"], ["node1", "node1"]])

            // The admin token is still required with a valid certificate.
            let badToken = await failure { () async throws(BDockerError) -> AccountingReceipt in
                try await asNode1.call(.PUT, "/set_accounting", body: SetAccountingRequest(
                    adminToken: String(repeating: "x", count: 64), accounting: SampleAccounting.record(job: 7, host: "node1").line()))
            }
            #expect(badToken?.httpStatus == 403 && badToken?.message.contains("admin token") == true, "\(String(describing: badToken))")

            // No client certificate (or one from another CA): the handshake fails.
            let stranger = try await TestPKI(name: "another CA")
            let foreign = try await stranger.node("node1")
            for tls in [ClientTLS(caFile: pki.caCertificate),
                        ClientTLS(caFile: pki.caCertificate, certificateFile: foreign.certificate, keyFile: foreign.key)] {
                let uncertified = try client(port, tls)
                let refused = await failure { () async throws(BDockerError) in
                    try await send(uncertified, config, host: "node1", job: 8)
                }
                #expect(refused?.httpStatus == 503, "\(String(describing: refused))")
            }
            #expect(try await stored(database).count == 3)
        }
    }

    /// Certificates as a modern CA issues them: the node in the subject alternative names (DNS),
    /// with or without a CN. Any of its DNS names may be a record's host; the first is the
    /// sender stored; a wildcard names no host.
    @Test func aNodeIsNamedByItsCertificatesDNSAlternativeNames() async throws {
        let pki = try await TestPKI()
        let node3 = try await pki.node("node3", dnsNames: ["node3.cluster.example", "node3"], commonName: false)
        let wildcard = try await pki.node("wild", dnsNames: ["*.cluster.example"], commonName: false)
        let both = try await pki.node("node5", dnsNames: ["node5.cluster.example"])
        let config = try config(pki, perNode: true)
        try await withDaemon(config) { port, database in
            let asNode3 = try client(port, ClientTLS(caFile: pki.caCertificate, certificateFile: node3.certificate, keyFile: node3.key))
            #expect(try await send(asNode3, config, host: "node3", job: 1).new)
            #expect(try await send(asNode3, config, host: "NODE3.cluster.example", job: 2).new)
            let other = await failure { () async throws(BDockerError) in try await send(asNode3, config, host: "node4", job: 3) }
            #expect(other?.httpStatus == 403 && other?.message.contains("node3.cluster.example, node3") == true, "\(String(describing: other))")

            // A CN beside the alternative names is one more name of the node.
            let asNode5 = try client(port, ClientTLS(caFile: pki.caCertificate, certificateFile: both.certificate, keyFile: both.key))
            #expect(try await send(asNode5, config, host: "node5", job: 4).new)
            #expect(try await stored(database) == [["node3", "node3.cluster.example"], ["NODE3.cluster.example", "node3.cluster.example"],
                                                   ["node5", "node5.cluster.example"]])

            // A wildcard certificate could speak for every host: it names none.
            let asAnyone = try client(port, ClientTLS(caFile: pki.caCertificate, certificateFile: wildcard.certificate, keyFile: wildcard.key))
            let refused = await failure { () async throws(BDockerError) in try await send(asAnyone, config, host: "node6.cluster.example", job: 5) }
            #expect(refused?.httpStatus == 403 && refused?.message.contains("names no node") == true, "\(String(describing: refused))")
            #expect(try await stored(database).count == 3)
        }
    }

    /// A renewed certificate without a restart: `systemctl reload` (SIGHUP) to the real
    /// bdockerd reads the TLS files again, and new connections get the new certificate; a key
    /// that does not go with it is refused (logged with file, section and key) and the
    /// certificate before stays in use.
    @Test func sighupReadsTheCertificateAgain() async throws {
        let first = try await TestPKI(name: "first CA"), second = try await TestPKI(name: "second CA")
        let certificate = files.file("server.pem"), key = files.file("server.key")
        /// Puts `pem` and `keyFile` in place as an admin's renewal would: written beside, renamed over.
        func install(_ pem: String, _ keyFile: String) throws {
            for (from, to) in [(pem, certificate), (keyFile, key)] {
                let staged = to + ".new"
                try? FileManager.default.removeItem(atPath: staged)
                try FileManager.default.copyItem(atPath: from, toPath: staged)
                chmod(staged, 0o600)
                #expect(rename(staged, to) == 0)
            }
        }
        try install(first.serverCertificate, first.serverKey)
        let port = try freeLoopbackPort()
        let config = try TestConfig.accounting(port: port, accountingFile: files.file("bdocker_accounting"), replacing: [
            "# tls_certificate = /etc/bdocker/tls/accounting.pem": "tls_certificate = \(certificate)",
            "# tls_key = /etc/bdocker/tls/accounting.key": "tls_key = \(key)",
        ])
        let daemon = try LoggedBdockerd(config)
        defer { daemon.stop() }
        /// A new connection (curl's) from a client trusting `ca` only: an open one keeps the
        /// certificate it began with, and this process's clients keep theirs open.
        func answers(trusting ca: String) async -> Bool {
            let r = try? await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca,
                                                           "https://localhost:\(port)/status"])
            return r?.stdout == "200"
        }
        #expect(try await eventually { await answers(trusting: first.caCertificate) })
        #expect(await answers(trusting: second.caCertificate) == false)

        try install(second.serverCertificate, second.serverKey)
        daemon.signal(SIGHUP)
        let renewed = try await daemon.line(containing: "SIGHUP:")
        #expect(renewed.contains("read the TLS files again (\(certificate)"), "\(renewed)")
        #expect(await answers(trusting: second.caCertificate))
        #expect(await answers(trusting: first.caCertificate) == false)

        // The first CA's key with the second's certificate: refused, the second pair stays.
        let staged = key + ".new"
        try FileManager.default.copyItem(atPath: first.serverKey, toPath: staged)
        chmod(staged, 0o600)
        #expect(rename(staged, key) == 0)
        daemon.signal(SIGHUP)
        let refused = try await daemon.line(containing: "SIGHUP:", occurrence: 2)
        #expect(refused.contains("\(config.configPath): [server] tls_key: \(key): does not go with \(certificate)"), "\(refused)")
        #expect(refused.contains("the TLS files read before stay in use"), "\(refused)")
        #expect(await answers(trusting: second.caCertificate))
        #expect(daemon.process.isRunning)
    }

    @Test func theOutboxClientFollowsTheEndpointScheme() async throws {
        let pki = try await TestPKI()
        let node = try await pki.node("node1")
        let https = try TestConfig(replacing: [
            "accounting_endpoint = http://127.0.0.1:5001": "accounting_endpoint = https://localhost:5001",
            "# accounting_ca = /etc/bdocker/tls/ca.pem": "accounting_ca = \(pki.caCertificate)",
            "# accounting_client_certificate = /etc/bdocker/tls/node.pem": "accounting_client_certificate = \(node.certificate)",
            "# accounting_client_key = /etc/bdocker/tls/node.key": "accounting_client_key = \(node.key)",
        ])
        #expect(try OutboxSender.accountingClient(https.settings)?.endpoint == "https://localhost:5001")
        #expect(try OutboxSender.accountingClient(TestConfig().settings)?.endpoint == "http://127.0.0.1:5001")
    }
}

/// The TLS keys' checks: each error names the file, section and key.
@Suite("TLS configuration")
struct TLSConfigTests {
    let dir = TempDir("bdocker-tls-config")

    func accounting(_ lines: [String]) throws(ConfigError) -> Settings {
        let token = dir.write("admin_token", TokenSecret.generate() + "\n", mode: 0o600)
        let text = """
            [resource]
            role = accounting
            [server]
            database = \(dir.file("db.sqlite"))
            \(lines.joined(separator: "\n"))
            [batch]
            controller = SGEAccountingController
            bdocker_accounting = \(dir.file("accounting"))
            [credentials]
            admin_token_file = \(token)
            """
        return try SettingsLoader.load(path: dir.write("acct.cfg", text))
    }

    func working(_ batchLines: [String]) throws(ConfigError) -> Settings {
        let text = """
            [resource]
            role = working
            [server]
            [batch]
            controller = SGEWNController
            \(batchLines.joined(separator: "\n"))
            [credentials]
            [dockerAPI]
            base_url = unix:///var/run/docker.sock
            """
        return try SettingsLoader.load(path: dir.write("node.cfg", text))
    }

    func configError(_ body: () throws(ConfigError) -> Settings) -> ConfigError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func theKeysComeInPairsAndBelongToTheirRole() {
        let file = dir.file("acct.cfg")
        let noKey = configError { () throws(ConfigError) in try accounting(["tls_certificate = /etc/x.pem"]) }
        #expect(noKey?.file == file && noKey?.section == "server" && noKey?.key == "tls_key", "\(String(describing: noKey))")
        let noCert = configError { () throws(ConfigError) in try accounting(["tls_key = /etc/x.key"]) }
        #expect(noCert?.key == "tls_certificate")
        let caAlone = configError { () throws(ConfigError) in try accounting(["tls_client_ca = /etc/ca.pem"]) }
        #expect(caAlone?.key == "tls_client_ca")
        let relative = configError { () throws(ConfigError) in try accounting(["tls_certificate = x.pem", "tls_key = /etc/x.key"]) }
        #expect(relative?.key == "tls_certificate" && relative?.problem.contains("absolute") == true)

        let plainCA = configError { () throws(ConfigError) in
            try working(["accounting_endpoint = http://acct:5001", "accounting_ca = /etc/ca.pem"])
        }
        #expect(plainCA?.section == "batch" && plainCA?.key == "accounting_ca", "\(String(describing: plainCA))")
        let halfPair = configError { () throws(ConfigError) in
            try working(["accounting_endpoint = https://acct:5001", "accounting_client_certificate = /etc/n.pem"])
        }
        #expect(halfPair?.key == "accounting_client_key")
        #expect(configError { () throws(ConfigError) in try working(["accounting_endpoint = https://acct:5001", "accounting_ca = /etc/ca.pem"]) } == nil)
    }

    @Test(.requires(.openssl)) func aMissingOrOpenKeyFileNamesFileSectionAndKey() async throws {
        let pki = try await TestPKI()
        let missing = try accounting(["tls_certificate = \(pki.serverCertificate)", "tls_key = \(dir.file("none.key"))"])
        let error = try #require(configError { () throws(ConfigError) in _ = try ServerTLS(settings: missing)!.context(); return missing })
        #expect(error.file == dir.file("acct.cfg") && error.section == "server" && error.key == "tls_key")
        #expect(error.description.contains(dir.file("none.key")) && error.description.contains("[server] tls_key"), "\(error)")
        // The daemon stops on it before listening.
        #expect(throws: ConfigError.self) { _ = try Daemon(settings: missing, logger: Logger(label: "test")).accountingServer() }

        chmod(pki.serverKey, 0o644)
        let open = try accounting(["tls_certificate = \(pki.serverCertificate)", "tls_key = \(pki.serverKey)"])
        let modeError = try #require(configError { () throws(ConfigError) in _ = try ServerTLS(settings: open)!.context(); return open })
        #expect(modeError.key == "tls_key" && modeError.problem.contains("mode 644"), "\(modeError)")
        chmod(pki.serverKey, 0o600)

        // A key that is not the certificate's.
        let node = try await pki.node("node1")
        let mismatched = try accounting(["tls_certificate = \(pki.serverCertificate)", "tls_key = \(node.key)"])
        let pairError = try #require(configError { () throws(ConfigError) in _ = try ServerTLS(settings: mismatched)!.context(); return mismatched })
        #expect(pairError.key == "tls_key", "\(pairError)")

        // The node's side: a client key that is not there.
        let nodeSettings = try working(["accounting_endpoint = https://acct:5001", "accounting_ca = \(pki.caCertificate)",
                                        "accounting_client_certificate = \(node.certificate)",
                                        "accounting_client_key = \(dir.file("gone.key"))"])
        let clientError = try #require(configError { () throws(ConfigError) in _ = try OutboxSender.accountingClient(nodeSettings); return nodeSettings })
        #expect(clientError.section == "batch" && clientError.key == "accounting_client_key" && clientError.description.contains("gone.key"))
        let badCA = try working(["accounting_endpoint = https://acct:5001", "accounting_ca = \(pki.serverKey)"])
        let caError = try #require(configError { () throws(ConfigError) in _ = try OutboxSender.accountingClient(badCA); return badCA })
        #expect(caError.key == "accounting_ca", "\(caError)")

        // --check-config reports the same, as a configuration error (exit 78).
        do {
            try await ConfigCheck.run(missing) { _ in }
            Issue.record("check-config passed a missing key file")
        } catch {
            #expect(error.exitCode == 78 && error.message.contains("[server] tls_key"), "\(error.message)")
        }
    }
}
