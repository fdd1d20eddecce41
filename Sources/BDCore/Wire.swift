/// The JSON bodies the client and the daemons exchange. Field names follow the original
/// bdocker API (snake_case), so a site's existing scripts keep working.

/// Every reply: `{"status_code": N, "results": ...}`.
public struct Envelope<Results: Codable & Sendable>: Codable, Sendable {
    public var statusCode: Int
    public var results: Results

    public init(statusCode: Int, results: Results) {
        self.statusCode = statusCode
        self.results = results
    }

    enum CodingKeys: String, CodingKey {
        case statusCode = "status_code"
        case results
    }
}

/// The job a configure call is about, as the prolog sees it.
public struct JobInfo: Codable, Sendable, Equatable {
    public var id: String
    /// Array task id; nil (or SGE's "undefined") for a plain job.
    public var taskID: String?
    /// `$SGE_JOB_SPOOL_DIR` or the batch system's equivalent.
    public var spool: String?

    public init(id: String, taskID: String? = nil, spool: String? = nil) {
        self.id = id
        self.taskID = taskID
        self.spool = spool
    }

    enum CodingKeys: String, CodingKey {
        case id, spool
        case taskID = "task_id"
    }
}

public struct UserCredentials: Codable, Sendable, Equatable {
    public var user: String
    public var uid: Int
    public var gid: Int
    public var home: String
    public var job: JobInfo

    public init(user: String, uid: Int, gid: Int, home: String, job: JobInfo) {
        self.user = user
        self.uid = uid
        self.gid = gid
        self.home = home
        self.job = job
    }
}

/// `POST /configuration`; the reply's results is the new user token. Only root on the unix
/// socket may call it; `admin_token` is still accepted from older clients and ignored.
public struct ConfigureRequest: Codable, Sendable {
    public var adminToken: String?
    public var userCredentials: UserCredentials

    public init(adminToken: String? = nil, userCredentials: UserCredentials) {
        self.adminToken = adminToken
        self.userCredentials = userCredentials
    }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
        case userCredentials = "user_credentials"
    }
}

/// `DELETE /clean` (root on the unix socket): the job, named as the batch system names it.
/// A token may come too (a script holding one); then it must be that job's, or the clean is
/// refused. A token alone still names its job, for callers of the original API.
public struct CleanRequest: Codable, Sendable {
    public var adminToken: String?
    public var token: String?
    public var job: JobInfo?

    public init(adminToken: String? = nil, token: String) {
        self.adminToken = adminToken
        self.token = token
        self.job = nil
    }

    public init(adminToken: String? = nil, job: JobInfo, token: String? = nil) {
        self.adminToken = adminToken
        self.token = token
        self.job = job
    }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
        case token, job
    }
}

/// `PUT /join`: put a process of the job (the batch system's task) into the job's COMMON
/// cgroup; the job's user with the job's token (Slurm's TaskProlog).
public struct JoinRequest: Codable, Sendable {
    public var token: String
    public var pid: Int

    public init(token: String, pid: Int) {
        self.token = token
        self.pid = pid
    }
}

/// `PUT /notify_accounting`: deliver pending accounting records now.
public struct NotifyRequest: Codable, Sendable {
    public var adminToken: String?

    public init(adminToken: String? = nil) { self.adminToken = adminToken }

    enum CodingKeys: String, CodingKey {
        case adminToken = "admin_token"
    }
}

/// `GET /status`: what runs and which schema it has.
public struct StatusResult: Codable, Sendable {
    public var role: String
    public var version: String
    public var database: String
    public var migrations: [String]

    public init(role: String, version: String, database: String, migrations: [String]) {
        self.role = role
        self.version = version
        self.database = database
        self.migrations = migrations
    }
}

public enum BDockerVersion {
    public static let current = "0.1.0"
}

/// `GET /ready`: whether the daemon can do its work now, check by check. The reply is 200 when
/// every check passed and 503 otherwise, with the same body.
public struct ReadinessResult: Codable, Sendable, Equatable {
    public struct Check: Codable, Sendable, Equatable {
        /// "database", "docker", "accounting_endpoint", "accounting_file".
        public var name: String
        public var ok: Bool
        /// What was checked, or why it failed.
        public var detail: String

        public init(name: String, ok: Bool, detail: String) {
            self.name = name
            self.ok = ok
            self.detail = detail
        }
    }

    public var ready: Bool
    public var checks: [Check]

    public init(checks: [Check]) {
        self.checks = checks
        self.ready = checks.allSatisfy(\.ok)
    }
}
