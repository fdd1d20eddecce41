import BDAccounting
import BDConfig
import BDCore
import BDStore
import Foundation
import GRDB
import Hummingbird
import HummingbirdAuth
import HummingbirdBcrypt
import Logging
import NIOCore
import Synchronization

/// Someone `[report] users_file` names.
public struct ReportUser: Sendable {
    public let name: String
}

/// The users file: `name:hash` lines as `htpasswd -B` writes them (bcrypt), read at start and
/// on SIGHUP (`ReportUsersFile`).
/// Like the admin token file it must be a regular file of root's; only root may change it
/// (no group or other write) and others may not read the hashes (no other access).
public struct ReportUsers: Sendable {
    let hashes: [String: String]
    /// A hash of a random secret at the users' cost: an unknown name costs the same bcrypt
    /// round as a known one, so the time of a 401 does not tell which names exist.
    let decoy: String

    public var names: [String] { hashes.keys.sorted() }

    public static func load(path: String, requireRootOwner: Bool) throws(BDockerError) -> ReportUsers {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw .invalidInput("\(path): \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw .invalidInput("\(path) is not a regular file (symlinks are refused)")
        }
        if requireRootOwner && st.st_uid != 0 {
            throw .invalidInput("\(path) must be owned by root (it is owned by uid \(st.st_uid))")
        }
        if st.st_mode & 0o027 != 0 {
            throw .invalidInput("\(path) has mode \(String(st.st_mode & 0o777, radix: 8)); its group may not write it and others "
                + "may not read it (chmod 640 \(path))")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .invalidInput("cannot read \(path) as UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// `name:$2y$10$...` per line; blank lines and `#` comments are skipped. `$2y$` (htpasswd)
    /// is bcrypt's `$2b$` under PHP's name: the bcrypt here knows only `$2a$` and `$2b$`.
    static func parse(_ text: String, path: String) throws(BDockerError) -> ReportUsers {
        var hashes: [String: String] = [:]
        var cost = 10
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let place = "\(path) line \(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw .invalidInput("\(place): expected name:bcrypt-hash (as htpasswd -B writes)")
            }
            let name = String(line[..<colon]), hash = String(line[line.index(after: colon)...])
            guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
                throw .invalidInput("\(place): the user name is empty or has blanks")
            }
            guard let normalized = normalizedHash(hash) else {
                // Never the hash itself: it is a secret's stand-in.
                throw .invalidInput("\(place): the password of '\(name)' is not a bcrypt hash ($2y$, $2b$ or $2a$; htpasswd -B)")
            }
            guard hashes[name] == nil else { throw .invalidInput("\(place): '\(name)' appears twice") }
            hashes[name] = normalized
            cost = Int(normalized.dropFirst(4).prefix(2)) ?? cost
        }
        guard !hashes.isEmpty else {
            throw .invalidInput("\(path) names no user; add one with htpasswd -B \(path) NAME")
        }
        // A secret nobody knows: 32 random bytes, hex.
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        return ReportUsers(hashes: hashes, decoy: Bcrypt.hash(secret, cost: UInt8(cost)))
    }

    /// `$2b$NN$` + 53 characters of bcrypt's base64, with `$2y$` read as `$2b$`; nil otherwise.
    static func normalizedHash(_ hash: String) -> String? {
        let bytes = Array(hash.utf8)
        guard bytes.count == 60, hash.hasPrefix("$2y$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$"),
              bytes[6] == UInt8(ascii: "$"), let cost = Int(String(decoding: bytes[4..<6], as: UTF8.self)), (4...31).contains(cost),
              bytes[7...].allSatisfy({ $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "/") || (0x30...0x39).contains($0)
                  || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        else { return nil }
        return hash.hasPrefix("$2y$") ? "$2b$" + hash.dropFirst(4) : hash
    }
}

/// The context of the report's routes: the daemon's, plus who signed in.
public struct ReportContext: ChildRequestContext, AuthRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: ReportUser?
    /// Whom failed sign-ins are counted against (`LoginThrottle`): the peer's IP address, or
    /// the local uid on the unix socket.
    public let clientAddress: String

    public init(context: BDContext) throws {
        coreContext = context.coreContext
        identity = nil
        switch context.caller {
        case .network: clientAddress = context.channel.remoteAddress?.ipAddress ?? "an unknown address"
        case .local(let uid, _): clientAddress = "uid \(uid)"
        }
    }
}

/// Lets a request through only with a user `BasicAuthenticator` accepted; otherwise the 401
/// comes from `ErrorReply` like every error, with the challenge browsers answer with a login.
struct ReportGuard: RouterMiddleware {
    typealias Context = ReportContext
    let logger: Logger

    static let challenge = "Basic realm=\"bdocker usage report\", charset=\"UTF-8\""

    func handle(_ request: Request, context: ReportContext, next: (Request, ReportContext) async throws -> Response) async throws -> Response {
        guard context.identity != nil else {
            let error = BDockerError.unauthorized("the usage report needs the name and password of a user of [report] users_file")
            let (status, body) = ErrorReply.envelope(for: error, request: request, logger: logger)
            return Response(status: status, headers: [.contentType: "application/json", .wwwAuthenticate: Self.challenge],
                            body: ResponseBody(byteBuffer: body))
        }
        return try await next(request, context)
    }
}

/// `[report] users_file` as the daemon holds it: read at start, read again by `reload()`
/// (SIGHUP). A file that no longer passes the checks is refused and the users read before stay,
/// so a slip while editing locks nobody out and lets nobody in.
public final class ReportUsersFile: Sendable {
    public let path: String
    let requireRootOwner: Bool
    private let loaded: Mutex<ReportUsers>

    public init(path: String, requireRootOwner: Bool = geteuid() == 0) throws(BDockerError) {
        self.path = path
        self.requireRootOwner = requireRootOwner
        loaded = Mutex(try ReportUsers.load(path: path, requireRootOwner: requireRootOwner))
    }

    public var users: ReportUsers { loaded.withLock { $0 } }

    /// Reads the file again; on success its users replace the old ones, which are returned.
    @discardableResult
    public func reload() throws(BDockerError) -> ReportUsers {
        let fresh = try ReportUsers.load(path: path, requireRootOwner: requireRootOwner)
        return loaded.withLock { old in
            defer { old = fresh }
            return old
        }
    }
}

/// The accounting daemon's usage report, for the users of `[report] users_file`.
public struct ReportService: Sendable {
    public let usersFile: ReportUsersFile
    public let database: BDockerDatabase
    public let logger: Logger
    /// Failed sign-ins per client address.
    public let throttle: LoginThrottle
    let bcrypt = BcryptGate()

    public init(usersFile: ReportUsersFile, database: BDockerDatabase, logger: Logger, throttle: LoginThrottle = LoginThrottle()) {
        self.usersFile = usersFile
        self.database = database
        self.logger = logger
        self.throttle = throttle
    }

    /// The report of the window the query names (`since`, `until`, `days`; default the last 30 days).
    func report(_ request: Request) async throws(BDockerError) -> UsageReport {
        let now = Int(Date().timeIntervalSince1970)
        let window = try ReportWindow.resolve(since: request.query("since"), until: request.query("until"),
                                              days: request.query("days"), now: now)
        return try await BDockerError.wrapping("reading the usage report failed") {
            try await database.pool.read { db in try UsageReport.fetch(db, window: window, now: now) }
        }
    }

    /// The page's own headers: no script may run and nothing be fetched, whatever a name holds.
    static func headers(_ contentType: String) -> HTTPFields {
        [.contentType: contentType, .contentSecurityPolicy: ReportPage.contentSecurityPolicy, .cacheControl: "no-store",
         .xContentTypeOptions: "nosniff"]
    }
}

extension Routes {
    /// `GET /report` (the page) and `GET /report.csv?by=TABLE` behind Basic authentication.
    static func report(_ router: Router<BDContext>, _ service: ReportService) {
        let group = router.group(context: ReportContext.self)
            .add(middleware: ReportSignIn(usersFile: service.usersFile, throttle: service.throttle, gate: service.bcrypt, logger: service.logger))
            .add(middleware: ReportGuard(logger: service.logger))
        group.get("report") { request, context -> Response in
            let report = try await service.report(request)
            let window = "\(ReportWindow.date(report.window.since)) to \(ReportWindow.date(report.window.lastDay))"
            service.logger.info("\(context.identity?.name ?? "?") read the usage report of \(window)")
            return Response(status: .ok, headers: ReportService.headers("text/html; charset=utf-8"),
                            body: ResponseBody(byteBuffer: ByteBuffer(string: ReportPage.html(report, links: .server))))
        }
        group.get("report.csv") { request, context -> Response in
            let table = try ReportCSV.Table.named(request.query("by") ?? "owner")
            let report = try await service.report(request)
            service.logger.info("\(context.identity?.name ?? "?") read the usage report's \(table.rawValue) CSV")
            var headers = ReportService.headers("text/csv; charset=utf-8")
            headers[.contentDisposition] = "attachment; filename=\"\(ReportCSV.fileName(report, table))\""
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: ReportCSV.render(report, table))))
        }
    }
}

extension Daemon {
    /// The report's service when `[report] users_file` is set; a users file the daemon refuses
    /// stops it, naming file, section and key.
    func reportService() throws -> ReportService? {
        guard let path = settings.report.usersFile else { return nil }
        do {
            return ReportService(usersFile: try ReportUsersFile(path: path), database: database, logger: logger)
        } catch {
            throw settings.error("report", "users_file", error.message)
        }
    }
}
