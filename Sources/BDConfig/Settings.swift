import BDCore
import Foundation
import Logging

/// Which daemon a configuration file describes.
public enum Role: String, Sendable, CaseIterable {
    case working
    case accounting
}

/// The validated contents of a bdocker configuration file. Every key of the original format is
/// here; new keys have defaults so an existing file keeps working.
public struct Settings: Sendable, Equatable {
    public struct Server: Sendable, Equatable {
        public var host: String = "127.0.0.1"
        public var port: Int = 5000
        public var logLevel: Logger.Level = .info
        public var loggingFile: String?
        /// Text lines, or one JSON object a line.
        public var logFormat: LogFormat = .text
        /// A TCP port serving only `/health`, `/ready` and `/metrics` (nil: none), on
        /// `metricsHost`: how Prometheus reaches a working node, whose API is a unix socket.
        public var metricsPort: Int?
        public var metricsHost: String = "127.0.0.1"
        public var workers: Int = 1
        /// Seconds a client waits for a reply (and the daemon for the Docker engine).
        public var timeout: Int = 500
        /// The daemon's one SQLite file.
        public var database: String
        /// Where the numbered migration files live; nil = look in the standard places.
        public var migrationsDir: String?
        /// The working node's unix socket: every call of that role comes through it, and the
        /// kernel tells the daemon each caller's uid.
        public var socket: String = Server.defaultSocket
        /// Also serve user commands over TCP on host:port (working role). Off by default: a
        /// TCP caller has no uid, so tokens are not bound to their user there.
        public var listenTCP: Bool = false
        /// Seconds a connection may stay without a complete request head.
        public var idleTimeout: Int = 30
        /// Open connections one local user may hold.
        public var maxConnectionsPerUser: Int = 64
        /// Largest `cp` in either direction, in bytes.
        public var maxCopyBytes: Int64 = 8 << 30
        /// Root-only directory where pinned bind sources are mounted for the engine.
        public var bindStaging: String = Server.defaultBindStaging
        /// PEM certificate chain and key of the accounting daemon's TLS listener (both or
        /// neither; without them it speaks plain HTTP).
        public var tlsCertificate: String?
        public var tlsKey: String?
        /// Per-node mode: clients must present a certificate this CA signed, whose name is the
        /// only hostname their records may carry.
        public var tlsClientCA: String?

        public static let defaultSocket = "/run/bdocker/bdockerd.sock"

        /// The one place the default database path is spelled: one file per role.
        public static func defaultDatabase(for role: Role) -> String { "/var/lib/bdocker/\(role.rawValue).sqlite" }
        public static let defaultBindStaging = "/run/bdocker/binds"
    }

    public struct Batch: Sendable, Equatable {
        public var controller: String
        public var enableCgroups: Bool = false
        public var cgroupsDir: String = "/sys/fs/cgroup"
        public var parentCgroup: String = "/bdocker"
        public var accountingEndpoint: String?
        public var onlyDockerAccounting: Bool = true
        public var monitoringTime: Double = 10
        public var includeWallclock: Bool = true
        public var defaultRuWallclock: Double = 0
        public var bdockerAccounting: String?
        /// Processes per container.
        public var containerPidsLimit: Int = 1024
        /// Containers a job may have at once.
        public var maxContainersPerJob: Int = 64
        /// The CA that signed the accounting daemon's certificate (https endpoints); nil: the
        /// system's trust store.
        public var accountingCA: String?
        /// This node's certificate and key for an accounting daemon in per-node mode.
        public var accountingClientCertificate: String?
        public var accountingClientKey: String?
    }

    public struct Credentials: Sendable, Equatable {
        public var controller: String = "TokenController"
        public var tokenClientFile: String = ".bdocker_token"
        public var adminTokenFile: String = "/etc/bdocker/admin_token"
        /// Directories besides HOME that `-v` sources may come from; HOME alone when empty.
        public var bindRoots: [BindRoot] = []
    }

    public struct Docker: Sendable, Equatable {
        public var baseURL: String = "unix:///var/run/docker.sock"
    }

    /// The accounting daemon's usage report (`/report`): served only when `usersFile` is set.
    public struct Report: Sendable, Equatable {
        /// `name:bcrypt-hash` lines (`htpasswd -B`): who may read the report.
        public var usersFile: String?
    }

    /// The file these settings came from, so later checks (controller names, paths) can
    /// report errors that name it.
    public var file: String
    public var role: Role
    public var server: Server
    public var batch: Batch
    public var credentials: Credentials
    public var docker: Docker
    public var report = Report()
    /// Things worth telling the admin that do not stop the daemon (obsolete keys, unknown keys).
    public var warnings: [String] = []

    /// A `ConfigError` pointing at a key of this file, for checks made after loading.
    public func error(_ section: String, _ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: file, section: section, key: key, problem)
    }
}
