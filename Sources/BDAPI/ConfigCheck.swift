import BDBatch
import BDConfig
import BDCore
import BDCredentials
import BDDocker
import BDStore
import BDWorkingNode
import Foundation
import Logging

/// What `bdockerd --check-config` runs: every check the daemon makes at start, without opening
/// the database for writing or listening. Each check reports a line; the first failure stops
/// the check with an exit status for systemd: 78 (EX_CONFIG) for anything the configuration
/// names wrongly, 69 (EX_UNAVAILABLE) for something outside it that is not there yet (the
/// Docker engine down, the port taken by another process).
public enum ConfigCheck {
    public struct Failure: Error, Sendable {
        public var message: String
        public var exitCode: Int32

        static func config(_ message: String) -> Failure { Failure(message: message, exitCode: 78) }
        static func unavailable(_ message: String) -> Failure { Failure(message: message, exitCode: 69) }
    }

    /// Runs the checks in the order the daemon meets them; `report` gets one line per check passed.
    public static func run(_ settings: Settings, report: (String) -> Void) async throws(Failure) {
        let file = settings.file
        report("configuration \(file): OK")
        report("role: \(settings.role.rawValue)")
        for warning in settings.warnings { report("warning: \(warning)") }

        // The admin token, as the daemon loads it (file owner and mode, length).
        do {
            _ = try AdminToken.load(path: settings.credentials.adminTokenFile, requireRootOwner: geteuid() == 0)
        } catch {
            throw .config("\(file): [credentials] admin_token_file = \(settings.credentials.adminTokenFile): \(error.message)")
        }
        report("admin token: \(settings.credentials.adminTokenFile) OK")

        guard CredentialsRegistry.names.contains(settings.credentials.controller) else {
            throw .config("\(settings.error("credentials", "controller", "'\(settings.credentials.controller)' is not a credentials controller; known: \(CredentialsRegistry.names.joined(separator: ", "))"))")
        }
        report("credentials controller: \(settings.credentials.controller)")

        switch settings.role {
        case .working:
            try await checkWorkingNode(settings, report: report)
        case .accounting:
            try checkAccountingFile(settings, report: report)
            try checkReportUsers(settings, report: report)
            try checkServerTLS(settings, report: report)
        }
        try checkListeners(settings, report: report)
    }

    static func checkWorkingNode(_ settings: Settings, report: (String) -> Void) async throws(Failure) {
        // The batch controller, and with it the cgroup hierarchies when enable_cgroups is on.
        do {
            _ = try BatchRegistry.make(settings: settings, logger: Logger(label: "check-config"))
        } catch let error as ConfigError {
            throw .config("\(error)")
        } catch {
            let message = (error as? BDockerError)?.message ?? "\(error)"
            throw .config("\(settings.file): [batch] \(settings.batch.enableCgroups ? "cgroups_dir = \(settings.batch.cgroupsDir)" : "controller = \(settings.batch.controller)"): \(message)")
        }
        report("batch controller: \(settings.batch.controller)" + (settings.batch.enableCgroups ? ", cgroups under \(settings.batch.cgroupsDir)" : ", cgroups off"))

        try checkBindRoots(settings, report: report)
        try checkAccountingEndpoint(settings, report: report)

        let engine: DockerEngine
        do {
            engine = try DockerEngine(baseURL: settings.docker.baseURL, timeoutSeconds: 5)
        } catch {
            throw .config("\(settings.file): [dockerAPI] base_url = \(settings.docker.baseURL): \(error.message)")
        }
        do {
            try await engine.ping()
        } catch {
            throw .unavailable("\(settings.file): [dockerAPI] base_url = \(settings.docker.baseURL): the Docker engine does not answer (\(error.message)); start it, or fix the URL")
        }
        report("docker engine: \(settings.docker.baseURL) answers")
    }

    /// The fixed part of each bind root, opened as every bind opens it. One not there (a file
    /// system not mounted yet) is a warning: binds below it are refused until it is, and the
    /// daemon serves the rest. One that others could redirect is a configuration error.
    static func checkBindRoots(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        for root in settings.credentials.bindRoots {
            do {
                let resolved = try BindStager.checkRoot(root)
                report("bind root: \(root.template)" + (resolved == root.fixedPath ? "" : " (\(root.fixedPath) is \(resolved))"))
            } catch .notFound(let why) {
                report("warning: \(settings.file): [credentials] bind_roots: \(root.template): \(why); binds below it are refused until it exists")
            } catch {
                throw .config("\(settings.error("credentials", "bind_roots", "\(root.template): \(error.message)"))")
            }
        }
    }

    static func checkAccountingFile(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        guard let path = settings.batch.bdockerAccounting else {
            throw .config("\(settings.error("batch", "bdocker_accounting", "key is missing: the accounting daemon needs the file it appends SGE lines to"))")
        }
        let dir = (path as NSString).deletingLastPathComponent
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .config("\(settings.error("batch", "bdocker_accounting", "the directory \(dir) of \(path) does not exist"))")
        }
        guard access(dir, W_OK) == 0 else {
            throw .config("\(settings.error("batch", "bdocker_accounting", "the directory \(dir) of \(path) is not writable"))")
        }
        report("accounting file: \(path)")
    }

    /// The usage report's users file, as the daemon reads it, when `[report] users_file` is set.
    static func checkReportUsers(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        guard let path = settings.report.usersFile else {
            report("usage report: off ([report] users_file not set)")
            return
        }
        do {
            let users = try ReportUsers.load(path: path, requireRootOwner: geteuid() == 0)
            report("usage report: /report for \(users.names.count) user\(users.names.count == 1 ? "" : "s") of \(path)")
        } catch {
            throw .config("\(settings.error("report", "users_file", error.message))")
        }
    }

    /// The accounting daemon's certificate, key and client CA, as the daemon loads them.
    static func checkServerTLS(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        guard let tls = ServerTLS(settings: settings) else {
            report("tls: off (plain HTTP; [server] tls_certificate not set)")
            return
        }
        do {
            _ = try tls.context()
        } catch {
            throw .config("\(error)")
        }
        report("tls: \(tls.certificate)" + (tls.clientCA.map { ", client certificates of \($0) required (per-node mode)" } ?? ""))
    }

    /// The outbox's TLS files when `[batch] accounting_endpoint` is https (the daemon itself is
    /// not asked: it may rightly be down while this node starts).
    static func checkAccountingEndpoint(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        guard let endpoint = settings.batch.accountingEndpoint else {
            report("accounting endpoint: not set (records stay in the outbox)")
            return
        }
        do {
            _ = try OutboxSender.accountingClient(settings)
        } catch {
            throw .config("\(error)")
        }
        guard endpoint.hasPrefix("https://") else {
            report("accounting endpoint: \(endpoint)")
            return
        }
        report("accounting endpoint: \(endpoint), verified against \(settings.batch.accountingCA ?? "the system's trust store")"
            + (settings.batch.accountingClientCertificate.map { ", as \($0)" } ?? ""))
    }

    /// Each listener the daemon would open: the unix socket's directory as the daemon demands
    /// it and nobody answering on the socket yet; a TCP port nobody holds.
    static func checkListeners(_ settings: Settings, report: (String) -> Void) throws(Failure) {
        for listener in Daemon.listeners(for: settings) {
            switch listener.address {
            case .unix(let path):
                let dir = (path as NSString).deletingLastPathComponent
                var st = stat()
                if lstat(dir, &st) == 0 {
                    guard (st.st_mode & S_IFMT) == S_IFDIR else {
                        throw .config("\(settings.error("server", "socket", "\(dir) is not a directory"))")
                    }
                    if geteuid() == 0, st.st_uid != 0 || st.st_mode & 0o022 != 0 {
                        throw .config("\(settings.error("server", "socket", "the socket directory \(dir) must be owned by root and writable by root only"))")
                    }
                }
                if Probe.unixSocketAnswers(path) {
                    throw .unavailable("\(settings.file): [server] socket = \(path): another process already listens there (a bdockerd still running?)")
                }
                report("listen: \(path)")
            case .tcp(let host, let port):
                if let problem = Probe.tcpPortTaken(host: host, port: port) {
                    throw .unavailable("\(settings.file): [server] host, port = \(host):\(port): \(problem); stop what holds it, or choose another port")
                }
                report("listen: \(host):\(port)")
            }
        }
    }
}

/// Small socket probes for the checks (and the tests' requirement checks).
public enum Probe {
    public static func unixSocketAnswers(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return connects(to: address, family: AF_UNIX)
    }

    /// Something accepts connections on 127.0.0.1:`port`.
    public static func loopbackPortAnswers(_ port: UInt16) -> Bool {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return connects(to: address, family: AF_INET)
    }

    /// A blocking stream connect to `address` (a sockaddr_un or sockaddr_in) succeeds.
    static func connects<Address>(to address: Address, family: Int32) -> Bool {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
        } == 0
    }

    /// Why `host:port` cannot be bound, or nil when it can (the probe socket is closed again).
    public static func tcpPortTaken(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            return "cannot resolve \(host)"
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            return errno == EADDRINUSE ? "the address is in use" : String(cString: strerror(errno))
        }
        return nil
    }
}
