import BDBatch
import BDConfig
import BDCore
import BDCredentials
import BDDocker
import BDMetrics
import BDStore
import BDWorkingNode
import Foundation
import GRDB
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// Builds a runnable daemon of either role from validated settings.
public struct Daemon: Sendable {
    public let settings: Settings
    public let database: BDockerDatabase
    public let logger: Logger

    /// Opens the role's database and reads the admin token: every check that can stop the
    /// daemon happens here, before it listens.
    public init(settings: Settings, logger: Logger) throws(BDockerError) {
        self.settings = settings
        self.logger = logger
        self.database = try BDockerDatabase.open(path: settings.server.database, role: settings.role.rawValue,
                                                 migrationsDir: settings.server.migrationsDir)
    }

    /// The admin token from `[credentials] admin_token_file`, checked as the daemon requires.
    func adminToken() throws -> AdminToken {
        try AdminToken.load(path: settings.credentials.adminTokenFile, requireRootOwner: geteuid() == 0)
    }

    /// The credentials driver named by `[credentials] controller`.
    public func tokenController(admin: AdminToken? = nil) throws -> any TokenController {
        let admin = try admin ?? adminToken()
        guard let driver = CredentialsRegistry.make(name: settings.credentials.controller,
                                                    pool: database.pool, adminToken: admin) else {
            throw settings.error("credentials", "controller",
                                 "'\(settings.credentials.controller)' is not a credentials controller; known: "
                                 + CredentialsRegistry.names.joined(separator: ", "))
        }
        return driver
    }

    /// The working node: credentials driver, Docker engine and batch controller from the config.
    public func workingNode() throws -> WorkingNode {
        let docker = try DockerEngine(baseURL: settings.docker.baseURL, timeoutSeconds: settings.server.timeout, logger: logger)
        let controller = try BatchRegistry.make(settings: settings, logger: logger)
        let admin = try adminToken()
        let metrics = NodeMetrics()
        let outbox = try OutboxSender(pool: database.pool, settings: settings, adminToken: admin.secret, logger: logger, metrics: metrics)
        return WorkingNode(database: database, tokens: try tokenController(admin: admin), docker: docker,
                           batch: (controller, settings.batch), outbox: outbox,
                           binds: BindStager(root: settings.server.bindStaging, bindRoots: settings.credentials.bindRoots),
                           limits: ContainerLimits(pidsLimit: settings.batch.containerPidsLimit,
                                                   maxContainersPerJob: settings.batch.maxContainersPerJob),
                           copyLimits: CopyLimits(maxBytes: settings.server.maxCopyBytes, timeoutSeconds: settings.server.timeout),
                           metrics: metrics, logger: logger)
    }

    /// What SIGHUP reads again: the signals (trapped by `run` before anything listens) and the
    /// contexts of the TLS listeners.
    struct Reloading: Sendable {
        let hangups: UnixSignalsSequence
        let tls: [LiveTLSContext]
    }

    /// The routes and background services of the configured role; with `reloading`, a service
    /// that reads what SIGHUP reloads.
    public func components() throws -> (router: Router<BDContext>, services: [any Service], node: WorkingNode?) {
        try components(reloading: nil)
    }

    func components(reloading: Reloading?) throws -> (router: Router<BDContext>, services: [any Service], node: WorkingNode?) {
        switch settings.role {
        case .working:
            let node = try workingNode()
            var services: [any Service] = []
            // Loops that run as long as the daemon: cancelled on graceful shutdown.
            if let monitor = node.monitor(interval: .seconds(settings.batch.monitoringTime)) {
                services.append(ClosureService { await cancelWhenGracefulShutdown { await monitor.run() } })
            }
            if let outbox = node.outbox {
                services.append(ClosureService { await cancelWhenGracefulShutdown { await outbox.run() } })
            }
            // Nothing to read again here; trapped so a SIGHUP is logged rather than fatal.
            if let reloading {
                services.append(ClosureService { [self] in await cancelWhenGracefulShutdown { await readAgain(reloading, nil) } })
            }
            return (Routes.working(node), services, node)
        case .accounting:
            let server = try accountingServer()
            // Replies come once a record is committed and its line follows: on SIGTERM the
            // ledger finishes that append before the daemon exits (a kill leaves it to the
            // start-up repair).
            let closing = ClosureService {
                try? await gracefulShutdown()
                await server.ledger.close()
            }
            var services: [any Service] = [closing]
            if let reloading {
                services.append(ClosureService { [self] in await cancelWhenGracefulShutdown { await readAgain(reloading, server.report) } })
            }
            return (Routes.accounting(server), services, nil)
        }
    }

    /// SIGHUP (`systemctl reload`) reads `[report] users_file` and the TLS files (`[server]
    /// tls_certificate`, `tls_key`, `tls_client_ca`) again; every other setting is read at start
    /// only. What fails its checks now is refused, named with its section and key, and what was
    /// read before stays.
    func readAgain(_ reloading: Reloading, _ report: ReportService?) async {
        let contexts = reloading.tls
        for await _ in reloading.hangups {
            for live in contexts {
                do throws(ConfigError) {
                    try live.reload()
                    logger.notice("SIGHUP: read the TLS files again (\(live.tls.certificate) and the rest of [server] tls_*); new connections use them")
                } catch {
                    logger.error("SIGHUP: \(error); the TLS files read before stay in use")
                }
            }
            guard let report else {
                if contexts.isEmpty {
                    logger.notice("SIGHUP: nothing to read again (only the accounting daemon's [report] users_file and TLS files are; other settings need a restart)")
                }
                continue
            }
            let file = report.usersFile
            do throws(BDockerError) {
                let before = try file.reload().names, now = file.users.names
                let changes = Set(now).subtracting(before).sorted().map { ", added \($0)" }
                    + Set(before).subtracting(now).sorted().map { ", removed \($0)" }
                logger.notice("SIGHUP: read \(file.path) again: \(now.count) user(s)\(changes.joined())")
            } catch {
                logger.error("SIGHUP: \(settings.error("report", "users_file", error.message)); the \(file.users.names.count) user(s) read before stay")
            }
        }
    }

    public func router() throws -> Router<BDContext> {
        try components().router
    }

    /// Where the role listens: the working node on its unix socket (and TCP for user commands
    /// only when `listen_tcp` is on); the accounting daemon on TCP, for the cluster's nodes.
    public var listeners: [Listener] { Self.listeners(for: settings) }

    /// The same from the settings alone (for `--check-config`, which builds no daemon).
    public static func listeners(for settings: Settings) -> [Listener] {
        let idle = Duration.seconds(settings.server.idleTimeout)
        let cap = settings.server.maxConnectionsPerUser
        let tcp = Listener(.tcp(host: settings.server.host, port: settings.server.port), idleTimeout: idle, maxConnectionsPerUser: cap)
        var listeners: [Listener]
        switch settings.role {
        case .working:
            let unix = Listener(.unix(path: settings.server.socket), idleTimeout: idle, maxConnectionsPerUser: cap)
            listeners = settings.server.listenTCP ? [unix, tcp] : [unix]
        case .accounting:
            // TLS on the nodes' port only; the metrics port stays plain HTTP for Prometheus.
            var nodes = tcp
            nodes.tls = ServerTLS(settings: settings)
            listeners = [nodes]
        }
        if let port = settings.server.metricsPort {
            listeners.append(Listener(.tcp(host: settings.server.metricsHost, port: port), idleTimeout: idle,
                                      maxConnectionsPerUser: cap, monitoringOnly: true))
        }
        return listeners
    }

    /// Runs the role until SIGTERM or SIGINT: every listener, the background services, and on
    /// a working node first the removal of bind mounts a crash left behind.
    public func run(onListening: @escaping @Sendable (Listener, Int) async -> Void = { _, _ in }) async throws {
        // Trapped before anything listens: a SIGHUP from then on is queued for the service that
        // reads it, never the default action (which would end the daemon).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let listeners = self.listeners
        let contexts = try listeners.map { listener throws(BDockerError) in try listener.tls.map(Listener.liveContext) }
        let (router, services, node) = try components(reloading: Reloading(hangups: hangups, tls: contexts.compactMap { $0 }))
        if let node {
            let swept = try await node.sweepBindStages()
            if swept > 0 { logger.info("removed \(swept) stale bind stage(s) under \(node.binds.root)") }
        }
        var apps: [any Service] = []
        for (n, listener) in listeners.enumerated() {
            let serving = listener.monitoringOnly ? Routes.monitoringOnly(router, logger: logger) : router
            apps.append(try listener.application(router: serving, services: n == 0 ? services : [], logger: logger,
                                                 liveTLS: contexts[n]) { port in
                await onListening(listener, port)
            })
        }
        let group = ServiceGroup(configuration: .init(services: apps.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            // NIO's own words name a syscall; the admin needs the address and what to do.
            let addresses = listeners.map(\.description).joined(separator: " and ")
            throw BDockerError.unavailable("cannot listen on \(addresses): the address is in use (another bdockerd still running?); "
                + "stop what holds it, or change [server] \(settings.role == .working ? "socket (or host and port)" : "host and port") in \(settings.file)")
        }
    }
}
