import BDConfig
import BDCore
import BDCredentials
import BDDocker
import BDStore
import Foundation
import GRDB
import Hummingbird
import Logging

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

    /// The credentials driver named by `[credentials] controller`.
    public func tokenController() throws -> any TokenController {
        let admin = try AdminToken.load(path: settings.credentials.adminTokenFile,
                                        requireRootOwner: geteuid() == 0)
        guard let driver = CredentialsRegistry.make(name: settings.credentials.controller,
                                                    pool: database.pool, adminToken: admin) else {
            throw settings.error("credentials", "controller",
                                 "'\(settings.credentials.controller)' is not a credentials controller; known: "
                                 + CredentialsRegistry.names.joined(separator: ", "))
        }
        return driver
    }

    public func router() throws -> Router<BDContext> {
        switch settings.role {
        case .working:
            let docker = try DockerEngine(baseURL: settings.docker.baseURL, timeoutSeconds: settings.server.timeout,
                                          logger: logger)
            return Routes.working(WorkingNode(database: database, tokens: try tokenController(), docker: docker, logger: logger))
        case .accounting:
            return Routes.base(logger: logger, database: database, role: "accounting")
        }
    }

    /// The Hummingbird application on `[server] host:port`; `onListening` gets the bound port
    /// (useful with port 0 in tests).
    public func application(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        Application(
            router: try router(),
            configuration: .init(address: .hostname(settings.server.host, port: settings.server.port),
                                 serverName: "bdockerd"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}

/// Credentials drivers by the name `[credentials] controller` uses. A new driver is a new type
/// conforming to `TokenController` and one line here.
public enum CredentialsRegistry {
    typealias Factory = @Sendable (DatabasePool, AdminToken) -> any TokenController
    static let drivers: [(name: String, make: Factory)] = [
        (SQLiteTokenController.name, { SQLiteTokenController(pool: $0, adminToken: $1) }),
    ]

    public static var names: [String] { drivers.map(\.name) }

    static func make(name: String, pool: DatabasePool, adminToken: AdminToken) -> (any TokenController)? {
        drivers.first { $0.name == name }?.make(pool, adminToken)
    }
}
