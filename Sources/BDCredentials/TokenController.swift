import BDCore
import BDStore
import GRDB

/// Who a user token speaks for: the job it was made for and that job's user.
public struct UserSession: Sendable, Equatable {
    public var jobID: Int64
    public var jobKey: String
    public var user: String
    public var uid: Int
    public var gid: Int
    public var home: String

    public init(jobID: Int64, jobKey: String, user: String, uid: Int, gid: Int, home: String) {
        self.jobID = jobID
        self.jobKey = jobKey
        self.user = user
        self.uid = uid
        self.gid = gid
        self.home = home
    }
}

/// The credentials seam of the seed's design. A driver decides how tokens are made, checked and
/// revoked; the authorization rules (`AccessPolicy`) are the same for every driver.
///
/// A driver keeps its state in the daemon's database so that issuing a token can share one
/// transaction with creating the job row: a crash leaves both or neither.
public protocol TokenController: Sendable {
    /// The name `[credentials] controller` uses for this driver.
    static var name: String { get }

    /// Succeeds only for the admin token (configure, clean, notify).
    func verifyAdmin(_ presented: String?) throws(BDockerError)

    /// Makes a new user token for the job (already inserted), inside the caller's write
    /// transaction, and returns the secret. Only a hash of it is kept.
    func issueToken(for job: JobRecord, db: Database) throws -> String

    /// The session of a live user token; `unauthorized` for a missing, unknown or revoked one.
    func authenticate(_ presented: String?) async throws(BDockerError) -> UserSession

    /// Revokes every token of the job inside the caller's write transaction (clean).
    func revokeAll(forJob jobID: Int64, db: Database) throws
}

extension TokenController {
    /// Rejects the admin token where a user token is expected, with a message that says so.
    public func requireUserToken(_ presented: String?) async throws(BDockerError) -> UserSession {
        if let presented, (try? verifyAdmin(presented)) != nil {
            throw .forbidden("the admin token cannot run user commands; use the job's token")
        }
        return try await authenticate(presented)
    }
}

/// Credentials drivers by the name `[credentials] controller` uses. A new driver is a new type
/// conforming to `TokenController` and one line here.
public enum CredentialsRegistry {
    public typealias Factory = @Sendable (DatabasePool, AdminToken) -> any TokenController
    public static let drivers: [(name: String, make: Factory)] = [
        (SQLiteTokenController.name, { SQLiteTokenController(pool: $0, adminToken: $1) }),
    ]

    public static var names: [String] { drivers.map(\.name) }

    public static func make(name: String, pool: DatabasePool, adminToken: AdminToken) -> (any TokenController)? {
        drivers.first { $0.name == name }?.make(pool, adminToken)
    }
}
