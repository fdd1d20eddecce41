import ArgumentParser
import BDAPI
import BDCommandLine
import BDConfig
import BDCore
import BDStore
import Foundation
import Hummingbird
import Logging

@main
struct BDockerd: AsyncParsableCommand {
    /// Argument errors in one line, as every other failure (BDCommandLine).
    static func main() async { await mainWithOneLineErrors(Array(CommandLine.arguments.dropFirst())) }

    static let configuration = CommandConfiguration(
        commandName: "bdockerd",
        abstract: "The bdocker daemon: the working-node API or the accounting API, by [resource] role.",
        version: BDockerVersion.current)

    @Option(name: .shortAndLong, help: "Configuration file (default: $BDOCKER_CONF_FILE, else /etc/configure_bdocker.cfg).")
    var config: String?

    @Option(help: "Override [resource] role (working or accounting).")
    var role: Role?

    @Option(help: "Log level, overriding [server] logging: DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    var logLevel: String?

    @Flag(help: "Validate the configuration, show the database's migrations, and exit.")
    var checkConfig = false

    func run() async throws {
        let path = SettingsLoader.resolvePath(explicit: config)
        var settings: Settings
        do {
            settings = try SettingsLoader.load(path: path)
        } catch {
            CommandLineExit.fail("configuration error: \(error)", code: 78)  // EX_CONFIG
        }
        if let parsed = role {
            if parsed != settings.role {
                // The default database follows the role unless the file names one.
                if settings.server.database == Settings.Server.defaultDatabase(for: settings.role) {
                    settings.server.database = Settings.Server.defaultDatabase(for: parsed)
                }
                settings.role = parsed
            }
        }
        if let logLevel {
            guard let level = SettingsLoader.parseLogLevel(logLevel) else {
                CommandLineExit.fail("--log-level '\(logLevel)' is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL", code: 64)
            }
            settings.server.logLevel = level
        }
        if checkConfig {
            await checkAndExit(settings)
        }

        do {
            try DaemonLogging.bootstrap(level: settings.server.logLevel, file: settings.server.loggingFile, format: settings.server.logFormat)
        } catch {
            CommandLineExit.fail("\(error)", code: 78)
        }
        let logger = Logger(label: "bdockerd")
        for warning in settings.warnings { logger.warning("\(warning)") }
        ProcessLimits.raiseDescriptorLimit()
        do {
            // Files the daemon makes (its databases, their -wal and -shm) are root's alone.
            umask(0o077)
            try StateDirectory.check(forDatabase: settings.server.database)
            let daemon = try Daemon(settings: settings, logger: logger)
            logger.info("bdockerd \(BDockerVersion.current), role \(settings.role.rawValue), config \(settings.file), database \(daemon.database.path) (migrations: \(daemon.database.appliedMigrations.joined(separator: ", ")))")
            // Stops cleanly on SIGTERM and SIGINT.
            try await daemon.run { listener, port in
                if case .tcp(let host, _) = listener.address {
                    logger.info("listening on \(host):\(port)")
                } else {
                    logger.info("listening on \(listener)")
                }
            }
            logger.info("stopped")
        } catch let error as BDockerError {
            // The operator reads this: the message and its cause. 69 (EX_UNAVAILABLE) for what
            // may pass by itself (a port still held), which systemd retries.
            logger.critical("\(error.description)")
            Foundation.exit(error.httpStatus == 503 ? 69 : 1)
        } catch let error as ConfigError {
            logger.critical("configuration error: \(error)")
            Foundation.exit(78)
        }
    }

    /// Every check the daemon makes at start (ConfigCheck), then the database's migrations.
    /// Exit 0, or 78 for a configuration problem, 69 for something outside it (engine down,
    /// port taken), 1 for a database this version cannot use; stdout is flushed before the
    /// error so the lines passed come first.
    func checkAndExit(_ settings: Settings) async -> Never {
        // Straight to the descriptor, unbuffered: each line is out before any error follows.
        func say(_ line: String) {
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        do {
            try await ConfigCheck.run(settings, report: say)
        } catch {
            CommandLineExit.fail(error.message, code: error.exitCode)
        }
        do {
            let (dir, files) = try MigrationSource.load(role: settings.role.rawValue, configured: settings.server.migrationsDir)
            say("migrations: \(dir) (\(files.map(\.identifier).joined(separator: ", ")))")
            say("database: \(settings.server.database)")
            if let state = try BDockerDatabase.inspect(path: settings.server.database, role: settings.role.rawValue,
                                                       migrationsDir: settings.server.migrationsDir) {
                say("applied: \(state.applied.isEmpty ? "none" : state.applied.joined(separator: ", "))")
                say("pending: \(state.pending.isEmpty ? "none" : state.pending.joined(separator: ", "))")
                if !state.unknown.isEmpty {
                    CommandLineExit.fail("database \(settings.server.database) has migrations this version does not know: \(state.unknown.joined(separator: ", "))", code: 1)
                }
            } else {
                say("applied: none (the database does not exist yet; it is created at start)")
            }
        } catch {
            CommandLineExit.fail("\(error)", code: 1)
        }
        Foundation.exit(0)
    }
}

/// `--role working|accounting`: ArgumentParser checks the value and lists the choices.
extension Role: ExpressibleByArgument {}
