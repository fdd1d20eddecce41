import BDCore
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

    /// The keys each section may hold, from the tables below; anything else is a warning.
    static var knownKeys: [String: Set<String>] {
        [
            "resource": ["role"],
            "server": Set(serverKeys.map(\.name)),
            "batch": Set(batchKeys.map(\.name)),
            "credentials": Set(credentialKeys.map(\.name)).union(["token_store"]),
            "dockerAPI": Set(dockerKeys.map(\.name)),
            "report": Set(reportKeys.map(\.name)),
        ]
    }

    // One table per section: each key's name, how its text is checked, and where it goes.
    // Keys are read in table order, so a key whose check needs another (time_out) follows it.

    static let serverKeys: [Key<Settings.Server>] = [
        .string("host", \.host),
        .int("port", \.port, in: 1...65535),
        .custom("logging") { r, key, server throws(ConfigError) in
            guard let level = try r.string("server", key) else { return }
            guard let parsed = parseLogLevel(level) else {
                throw r.error("server", key, "'\(level)' is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
            }
            server.logLevel = parsed
        },
        .string("logging_file", \.loggingFile),
        .custom("log_format") { r, key, server throws(ConfigError) in
            guard let text = try r.string("server", key) else { return }
            guard let format = LogFormat(rawValue: text.lowercased()) else {
                throw r.error("server", key, "'\(text)' is not a log format; use text or json")
            }
            server.logFormat = format
        },
        .custom("metrics_port") { r, key, server throws(ConfigError) in
            guard let port = try r.int("server", key, in: 0...65535) else { return }
            server.metricsPort = port == 0 ? nil : port
        },
        .string("metrics_host", \.metricsHost),
        .int("workers", \.workers, in: 1...1024),
        .int("timeout", \.timeout, in: 1...86_400),
        // The original's spelling; refused when both are set, so neither silently wins.
        .custom("time_out") { r, key, server throws(ConfigError) in
            guard let timeout = try r.int("server", key, in: 1...86_400) else { return }
            if r.ini.entry("server", "timeout") != nil {
                throw r.error("server", key, "both 'timeout' and its old spelling 'time_out' are set; keep one")
            }
            server.timeout = timeout
        },
        .path("database", \.database),
        .path("migrations_dir", \.migrationsDir),
        .path("socket", \.socket),
        .bool("listen_tcp", \.listenTCP),
        .int("idle_timeout", \.idleTimeout, in: 1...3600),
        .int("max_connections_per_user", \.maxConnectionsPerUser, in: 1...100_000),
        .custom("max_copy_bytes") { r, key, server throws(ConfigError) in
            if let bytes = try r.byteSize("server", key) { server.maxCopyBytes = bytes }
        },
        .path("bind_staging", \.bindStaging),
        .path("tls_certificate", \.tlsCertificate),
        .path("tls_key", \.tlsKey),
        .path("tls_client_ca", \.tlsClientCA),
    ]

    static let batchKeys: [Key<Settings.Batch>] = [
        .string("controller", \.controller),
        .bool("enable_cgroups", \.enableCgroups),
        .path("cgroups_dir", \.cgroupsDir),
        .custom("parent_cgroup") { r, key, batch throws(ConfigError) in
            guard let parent = try r.string("batch", key) else { return }
            // A cgroup path relative to each controller's root: one leading slash, no '..'.
            let parts = parent.split(separator: "/").map(String.init)
            if parts.contains("..") || parts.contains(".") {
                throw r.error("batch", key, "'\(parent)' may not contain '.' or '..'")
            }
            batch.parentCgroup = "/" + parts.joined(separator: "/")
        },
        .custom("accounting_endpoint") { r, key, batch throws(ConfigError) in
            batch.accountingEndpoint = try r.url("batch", key)
        },
        .bool("only_docker_accounting", \.onlyDockerAccounting),
        .double("monitoring_time", \.monitoringTime, min: 0.1),
        .bool("include_wallclock", \.includeWallclock),
        .double("default_ru_wallclock", \.defaultRuWallclock, min: 0),
        .path("bdocker_accounting", \.bdockerAccounting),
        .int("container_pids_limit", \.containerPidsLimit, in: 16...4_194_304),
        .int("max_containers_per_job", \.maxContainersPerJob, in: 1...10_000),
        .path("accounting_ca", \.accountingCA),
        .path("accounting_client_certificate", \.accountingClientCertificate),
        .path("accounting_client_key", \.accountingClientKey),
    ]

    static let credentialKeys: [Key<Settings.Credentials>] = [
        .string("controller", \.controller),
        .custom("token_client_file") { r, key, credentials throws(ConfigError) in
            guard let file = try r.string("credentials", key) else { return }
            guard !file.contains("/") else {
                throw r.error("credentials", key, "'\(file)' must be a file name in the user's HOME, not a path")
            }
            credentials.tokenClientFile = file
        },
        .path("admin_token_file", \.adminTokenFile),
        .custom("bind_roots") { r, key, credentials throws(ConfigError) in
            guard let text = try r.string("credentials", key) else { return }
            do throws(BindRoot.Invalid) {
                credentials.bindRoots = try BindRoot.parseList(text)
            } catch {
                throw r.error("credentials", key, error.problem)
            }
        },
    ]

    static let dockerKeys: [Key<Settings.Docker>] = [
        .custom("base_url") { r, key, docker throws(ConfigError) in
            guard let url = try r.string("dockerAPI", key) else { return }
            guard ["unix://", "tcp://", "http://"].contains(where: { url.hasPrefix($0) }) else {
                throw r.error("dockerAPI", key, "'\(url)' must start with unix://, tcp:// or http://")
            }
            docker.baseURL = url
        },
    ]

    static let reportKeys: [Key<Settings.Report>] = [
        .path("users_file", \.usersFile),
    ]

    public static func settings(from ini: INIFile) throws(ConfigError) -> Settings {
        let r = Reader(ini: ini)
        let roleText = try r.required("resource", "role")
        guard let role = Role(rawValue: roleText.lowercased()) else {
            throw r.error("resource", "role", "'\(roleText)' is not a role; use 'working' or 'accounting'")
        }

        try r.requireSection("server")
        var server = Settings.Server(database: Settings.Server.defaultDatabase(for: role))
        try r.read("server", serverKeys, into: &server)
        // The accounting daemon (and a working node with listen_tcp) already holds host:port.
        if let metrics = server.metricsPort, metrics == server.port, role == .accounting || server.listenTCP {
            throw r.error("server", "metrics_port", "\(metrics) is also [server] port; the metrics need a port of their own, "
                + "or none (/metrics is served on [server] port too)")
        }

        try r.requireSection("batch")
        var batch = Settings.Batch(controller: try r.required("batch", "controller"))
        try r.read("batch", batchKeys, into: &batch)
        try checkTLS(r, role: role, server: server, batch: batch)
        if role == .accounting && batch.bdockerAccounting == nil {
            throw r.error("batch", "bdocker_accounting", "key is missing: the accounting daemon needs the file it appends SGE lines to")
        }

        var credentials = Settings.Credentials()
        if role == .working { try r.requireSection("credentials") }
        try r.read("credentials", credentialKeys, into: &credentials)

        var docker = Settings.Docker()
        if role == .working {
            _ = try r.required("dockerAPI", "base_url")
            try r.read("dockerAPI", dockerKeys, into: &docker)
        }

        var report = Settings.Report()
        try r.read("report", reportKeys, into: &report)

        var warnings: [String] = []
        if role == .working, ini.hasSection("report") {
            warnings.append("\(ini.path): [report] is read by the accounting daemon only; a working node ignores it")
        }
        if let store = ini.entry("credentials", "token_store") {
            let what = store.value.hasSuffix(".yml") || store.value.hasSuffix(".yaml") ? "the YAML token store" : "the token store"
            warnings.append("\(ini.path):\(store.line): [credentials] token_store = \(store.value): "
                + "\(what) is no longer used; user tokens now live (hashed) in the SQLite database "
                + "[server] database = \(server.database), and the admin token is read from "
                + "[credentials] admin_token_file = \(credentials.adminTokenFile). Remove this line.")
        }
        let known = knownKeys
        for section in ini.sectionOrder {
            guard let keys = known[section] else {
                let hint = Suggestion.section(section, among: Array(known.keys)).map { " (\($0))" } ?? ""
                warnings.append("\(ini.path): [\(section)] is not a bdocker section; it is ignored\(hint)")
                continue
            }
            for (key, entry) in ini.sections[section]! where !keys.contains(key) {
                let hint = Suggestion.nearest(key, among: Array(keys)).map { " (did you mean \($0)?)" } ?? ""
                warnings.append("\(ini.path):\(entry.line): [\(section)] \(key) is not a bdocker key; it is ignored\(hint)")
            }
        }

        return Settings(file: ini.path, role: role, server: server, batch: batch,
                        credentials: credentials, docker: docker, report: report, warnings: warnings.sorted())
    }

    /// The TLS keys come in pairs, and each side's keys belong to its role: a certificate
    /// without its key (or a client CA without a certificate) would silently leave plain HTTP.
    static func checkTLS(_ r: Reader, role: Role, server: Settings.Server, batch: Settings.Batch) throws(ConfigError) {
        if (server.tlsCertificate == nil) != (server.tlsKey == nil) {
            let missing = server.tlsKey == nil ? "tls_key" : "tls_certificate"
            throw r.error("server", missing, "key is missing: tls_certificate and tls_key are set together, or neither")
        }
        if server.tlsClientCA != nil, server.tlsCertificate == nil {
            throw r.error("server", "tls_client_ca", "needs tls_certificate and tls_key: client certificates are checked over TLS only")
        }
        if role == .working, server.tlsCertificate != nil {
            throw r.error("server", "tls_certificate", "is for the accounting daemon; a working node's TLS keys are "
                + "[batch] accounting_ca, accounting_client_certificate and accounting_client_key")
        }
        if (batch.accountingClientCertificate == nil) != (batch.accountingClientKey == nil) {
            let missing = batch.accountingClientKey == nil ? "accounting_client_key" : "accounting_client_certificate"
            throw r.error("batch", missing, "key is missing: accounting_client_certificate and accounting_client_key are set together, or neither")
        }
        let tlsKeys = [("accounting_ca", batch.accountingCA), ("accounting_client_certificate", batch.accountingClientCertificate)]
        for (key, value) in tlsKeys where value != nil && batch.accountingEndpoint?.hasPrefix("https://") != true {
            throw r.error("batch", key, "needs an https:// accounting_endpoint (it is \(batch.accountingEndpoint ?? "not set"))")
        }
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

/// One configuration key: its name, and how its text is checked and stored into the
/// section's settings (`S`). Absent keys leave the default.
struct Key<S>: Sendable {
    typealias Apply = @Sendable (Reader, String, inout S) throws(ConfigError) -> Void
    let name: String
    let apply: Apply

    static func custom(_ name: String, _ apply: @escaping Apply) -> Key { Key(name: name, apply: apply) }

    static func string(_ name: String, _ field: WritableKeyPath<S, String> & Sendable) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.string(r.section, key) { s[keyPath: field] = v } }
    }

    static func string(_ name: String, _ field: WritableKeyPath<S, String?> & Sendable) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.string(r.section, key) { s[keyPath: field] = v } }
    }

    static func path(_ name: String, _ field: WritableKeyPath<S, String> & Sendable) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.path(r.section, key) { s[keyPath: field] = v } }
    }

    static func path(_ name: String, _ field: WritableKeyPath<S, String?> & Sendable) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.path(r.section, key) { s[keyPath: field] = v } }
    }

    static func int(_ name: String, _ field: WritableKeyPath<S, Int> & Sendable, in range: ClosedRange<Int>) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.int(r.section, key, in: range) { s[keyPath: field] = v } }
    }

    static func double(_ name: String, _ field: WritableKeyPath<S, Double> & Sendable, min: Double) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.double(r.section, key, min: min) { s[keyPath: field] = v } }
    }

    static func bool(_ name: String, _ field: WritableKeyPath<S, Bool> & Sendable) -> Key {
        Key(name: name) { r, key, s throws(ConfigError) in if let v = try r.bool(r.section, key) { s[keyPath: field] = v } }
    }
}

/// Typed accessors over an `INIFile` that throw errors naming file, section and key.
struct Reader {
    let ini: INIFile
    /// The section `Key`s of the current `read` belong to.
    var section = ""

    /// Applies each key of the table to `value`, in table order.
    func read<S>(_ section: String, _ keys: [Key<S>], into value: inout S) throws(ConfigError) {
        var scoped = self
        scoped.section = section
        for key in keys { try key.apply(scoped, key.name, &value) }
    }

    func error(_ section: String, _ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: ini.path, section: section, key: key, line: ini.entry(section, key)?.line, problem)
    }

    func requireSection(_ section: String) throws(ConfigError) {
        guard ini.hasSection(section) else {
            throw ConfigError(file: ini.path, section: section, "section is missing" + Self.caseHint(section, ini))
        }
    }

    /// " (the file has [Server]: section names are case-sensitive)" when only the case differs.
    static func caseHint(_ section: String, _ ini: INIFile) -> String {
        guard let other = ini.sectionOrder.first(where: { $0.lowercased() == section.lowercased() }) else { return "" }
        return " (the file has [\(other)]: section names are case-sensitive)"
    }

    func string(_ section: String, _ key: String, required: Bool = false) throws(ConfigError) -> String? {
        guard ini.hasSection(section) else {
            if required { throw ConfigError(file: ini.path, section: section, "section is missing" + Self.caseHint(section, ini)) }
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

/// The known name an unknown one was probably meant to be.
enum Suggestion {
    /// The closest known key by edit distance, if it is close enough to be a typo.
    static func nearest(_ word: String, among known: [String]) -> String? {
        var best: (name: String, distance: Int)?
        for name in known.sorted() {
            let d = distance(word, name)
            if d < (best?.distance ?? Int.max) { best = (name, d) }
        }
        guard let best, best.distance <= max(2, word.count / 3) else { return nil }
        return best.name
    }

    /// For an unknown section: the known one it differs from only in case, or a near one.
    static func section(_ section: String, among known: [String]) -> String? {
        if let same = known.first(where: { $0.lowercased() == section.lowercased() }) {
            return "section names are case-sensitive: use [\(same)]"
        }
        return nearest(section, among: known).map { "did you mean [\($0)]?" }
    }

    /// Levenshtein distance over characters.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution: Int = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                let edit: Int = min(previous[j] + 1, current[j - 1] + 1)
                current[j] = min(edit, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}
