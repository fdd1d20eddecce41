import Foundation
import Logging

/// Turns an `INIFile` into validated `Settings`, or a `ConfigError` naming file, section and key.
public enum SettingsLoader {
    public static let defaultPath = "/etc/configure_bdocker.cfg"
    public static let environmentVariable = "BDOCKER_CONF_FILE"

    /// `--config`, else `$BDOCKER_CONF_FILE`, else `/etc/configure_bdocker.cfg`.
    public static func resolvePath(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let env = environment[environmentVariable], !env.isEmpty { return env }
        return defaultPath
    }

    public static func load(path: String) throws(ConfigError) -> Settings {
        try settings(from: INIFile.load(path: path))
    }

    /// The keys each section may hold; anything else is reported as a warning.
    static let knownKeys: [String: Set<String>] = [
        "resource": ["role"],
        "server": ["host", "port", "logging", "logging_file", "workers", "timeout", "time_out",
                   "database", "migrations_dir", "socket", "listen_tcp", "idle_timeout",
                   "max_connections_per_user", "max_copy_bytes", "bind_staging"],
        "batch": ["controller", "enable_cgroups", "cgroups_dir", "parent_cgroup", "accounting_endpoint",
                  "only_docker_accounting", "monitoring_time", "include_wallclock",
                  "default_ru_wallclock", "bdocker_accounting", "container_pids_limit",
                  "max_containers_per_job"],
        "credentials": ["controller", "token_store", "token_client_file", "admin_token_file"],
        "dockerAPI": ["base_url"],
    ]

    public static func settings(from ini: INIFile) throws(ConfigError) -> Settings {
        let r = Reader(ini: ini)
        let roleText = try r.required("resource", "role")
        guard let role = Role(rawValue: roleText.lowercased()) else {
            throw r.error("resource", "role", "'\(roleText)' is not a role; use 'working' or 'accounting'")
        }

        var server = Settings.Server(database: "/var/lib/bdocker/\(role.rawValue).sqlite")
        try r.requireSection("server")
        server.host = try r.string("server", "host") ?? server.host
        server.port = try r.int("server", "port", in: 1...65535) ?? server.port
        if let level = try r.string("server", "logging") {
            guard let parsed = parseLogLevel(level) else {
                throw r.error("server", "logging",
                              "'\(level)' is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
            }
            server.logLevel = parsed
        }
        server.loggingFile = try r.string("server", "logging_file")
        server.workers = try r.int("server", "workers", in: 1...1024) ?? server.workers
        if ini.entry("server", "timeout") != nil && ini.entry("server", "time_out") != nil {
            throw r.error("server", "time_out", "both 'timeout' and its old spelling 'time_out' are set; keep one")
        }
        if let timeout = try r.int("server", "timeout", in: 1...86_400) {
            server.timeout = timeout
        } else if let timeout = try r.int("server", "time_out", in: 1...86_400) {
            server.timeout = timeout
        }
        server.database = try r.path("server", "database") ?? server.database
        server.migrationsDir = try r.path("server", "migrations_dir")
        server.socket = try r.path("server", "socket") ?? server.socket
        server.listenTCP = try r.bool("server", "listen_tcp") ?? server.listenTCP
        server.idleTimeout = try r.int("server", "idle_timeout", in: 1...3600) ?? server.idleTimeout
        server.maxConnectionsPerUser = try r.int("server", "max_connections_per_user", in: 1...100_000) ?? server.maxConnectionsPerUser
        server.maxCopyBytes = try r.byteSize("server", "max_copy_bytes") ?? server.maxCopyBytes
        server.bindStaging = try r.path("server", "bind_staging") ?? server.bindStaging

        try r.requireSection("batch")
        var batch = Settings.Batch(controller: try r.required("batch", "controller"))
        batch.enableCgroups = try r.bool("batch", "enable_cgroups") ?? batch.enableCgroups
        batch.cgroupsDir = try r.path("batch", "cgroups_dir") ?? batch.cgroupsDir
        if let parent = try r.string("batch", "parent_cgroup") {
            // A cgroup path relative to each controller's root: one leading slash, no '..'.
            let parts = parent.split(separator: "/").map(String.init)
            if parts.contains("..") || parts.contains(".") {
                throw r.error("batch", "parent_cgroup", "'\(parent)' may not contain '.' or '..'")
            }
            batch.parentCgroup = "/" + parts.joined(separator: "/")
        }
        batch.accountingEndpoint = try r.url("batch", "accounting_endpoint")
        batch.onlyDockerAccounting = try r.bool("batch", "only_docker_accounting") ?? batch.onlyDockerAccounting
        batch.monitoringTime = try r.double("batch", "monitoring_time", min: 0.1) ?? batch.monitoringTime
        batch.includeWallclock = try r.bool("batch", "include_wallclock") ?? batch.includeWallclock
        batch.defaultRuWallclock = try r.double("batch", "default_ru_wallclock", min: 0) ?? batch.defaultRuWallclock
        batch.bdockerAccounting = try r.path("batch", "bdocker_accounting")
        batch.containerPidsLimit = try r.int("batch", "container_pids_limit", in: 16...4_194_304) ?? batch.containerPidsLimit
        batch.maxContainersPerJob = try r.int("batch", "max_containers_per_job", in: 1...10_000) ?? batch.maxContainersPerJob
        if role == .accounting && batch.bdockerAccounting == nil {
            throw r.error("batch", "bdocker_accounting",
                          "key is missing: the accounting daemon needs the file it appends SGE lines to")
        }

        var credentials = Settings.Credentials()
        var warnings: [String] = []
        if ini.hasSection("credentials") {
            credentials.controller = try r.string("credentials", "controller") ?? credentials.controller
            if let file = try r.string("credentials", "token_client_file") {
                guard !file.contains("/") else {
                    throw r.error("credentials", "token_client_file",
                                  "'\(file)' must be a file name in the user's HOME, not a path")
                }
                credentials.tokenClientFile = file
            }
            credentials.adminTokenFile = try r.path("credentials", "admin_token_file") ?? credentials.adminTokenFile
            if let store = ini.entry("credentials", "token_store") {
                let what = store.value.hasSuffix(".yml") || store.value.hasSuffix(".yaml") ? "the YAML token store" : "the token store"
                warnings.append("\(ini.path):\(store.line): [credentials] token_store = \(store.value): "
                    + "\(what) is no longer used; user tokens now live (hashed) in the SQLite database "
                    + "[server] database = \(server.database), and the admin token is read from "
                    + "[credentials] admin_token_file = \(credentials.adminTokenFile). Remove this line.")
            }
        } else if role == .working {
            throw ConfigError(file: ini.path, section: "credentials", "section is missing")
        }

        var docker = Settings.Docker()
        if role == .working {
            try r.requireSection("dockerAPI")
            docker.baseURL = try r.required("dockerAPI", "base_url")
            let allowed = ["unix://", "tcp://", "http://"]
            guard allowed.contains(where: { docker.baseURL.hasPrefix($0) }) else {
                throw r.error("dockerAPI", "base_url",
                              "'\(docker.baseURL)' must start with unix://, tcp:// or http://")
            }
        }

        for section in ini.sectionOrder {
            guard let known = knownKeys[section] else {
                warnings.append("\(ini.path): [\(section)] is not a bdocker section; it is ignored")
                continue
            }
            for (key, entry) in ini.sections[section]! where !known.contains(key) {
                warnings.append("\(ini.path):\(entry.line): [\(section)] \(key) is not a bdocker key; it is ignored")
            }
        }

        return Settings(file: ini.path, role: role, server: server, batch: batch,
                        credentials: credentials, docker: docker, warnings: warnings.sorted())
    }

    /// Python logging level names, as the original used, plus swift-log's own.
    public static func parseLogLevel(_ text: String) -> Logger.Level? {
        switch text.uppercased() {
        case "TRACE": return .trace
        case "DEBUG": return .debug
        case "INFO": return .info
        case "NOTICE": return .notice
        case "WARNING", "WARN": return .warning
        case "ERROR": return .error
        case "CRITICAL", "FATAL": return .critical
        default: return nil
        }
    }
}

/// Typed accessors over an `INIFile` that throw errors naming file, section and key.
struct Reader {
    let ini: INIFile

    func error(_ section: String, _ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: ini.path, section: section, key: key, line: ini.entry(section, key)?.line, problem)
    }

    func requireSection(_ section: String) throws(ConfigError) {
        guard ini.hasSection(section) else {
            throw ConfigError(file: ini.path, section: section, "section is missing")
        }
    }

    func string(_ section: String, _ key: String, required: Bool = false) throws(ConfigError) -> String? {
        guard ini.hasSection(section) else {
            if required { throw ConfigError(file: ini.path, section: section, "section is missing") }
            return nil
        }
        guard let entry = ini.entry(section, key) else {
            if required { throw error(section, key, "key is missing") }
            return nil
        }
        if entry.value.isEmpty { throw error(section, key, "value is empty") }
        return entry.value
    }

    func required(_ section: String, _ key: String) throws(ConfigError) -> String {
        guard let value = try string(section, key, required: true) else { throw error(section, key, "key is missing") }
        return value
    }

    func path(_ section: String, _ key: String) throws(ConfigError) -> String? {
        guard let value = try string(section, key) else { return nil }
        guard value.hasPrefix("/") else { throw error(section, key, "'\(value)' must be an absolute path") }
        return value
    }

    func int(_ section: String, _ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let value = try string(section, key) else { return nil }
        guard let number = Int(value), range.contains(number) else {
            throw error(section, key, "'\(value)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// The default upper bound of `double`: every such key is a number of seconds, and 100
    /// years is more than any of them means. The bound keeps later conversions (`Int(...)`,
    /// `Duration.seconds`, nanoseconds in `Int64`) from trapping.
    static let largestSeconds: Double = 3_155_760_000

    func double(_ section: String, _ key: String, min: Double, max: Double = Reader.largestSeconds) throws(ConfigError) -> Double? {
        guard let value = try string(section, key) else { return nil }
        guard let number = Double(value), number.isFinite, number >= min, number <= max else {
            throw error(section, key, "'\(value)' is not a number from \(min) to \(max)")
        }
        return number
    }

    /// configparser's boolean words.
    func bool(_ section: String, _ key: String) throws(ConfigError) -> Bool? {
        guard let value = try string(section, key) else { return nil }
        switch value.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw error(section, key, "'\(value)' is not a boolean; use yes/no or true/false")
        }
    }

    /// An http URL; a bare `host:port` (as old files have) gets `http://` in front.
    func url(_ section: String, _ key: String) throws(ConfigError) -> String? {
        guard var value = try string(section, key) else { return nil }
        if !value.contains("://") { value = "http://" + value }
        guard let url = URL(string: value), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw error(section, key, "'\(value)' is not an http URL such as http://accounting-host:5001")
        }
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }
}
