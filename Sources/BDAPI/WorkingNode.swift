import BDCore
import BDCredentials
import BDDocker
import BDStore
import Foundation
import GRDB
import Logging

/// The working-node daemon's behaviour, independent of HTTP: what configure and clean do.
public struct WorkingNode: Sendable {
    public let database: BDockerDatabase
    public let tokens: any TokenController
    public let logger: Logger
    /// The engine containers run on; nil only in tests of configure/clean alone.
    public let docker: DockerEngine?
    /// Looks users up; replaceable so unit tests can describe users that do not exist here.
    let passwd: @Sendable (String) -> PasswdEntry?

    public init(database: BDockerDatabase, tokens: any TokenController, docker: DockerEngine?, logger: Logger,
                passwd: @escaping @Sendable (String) -> PasswdEntry? = { PasswdEntry.lookup(name: $0) }) {
        self.database = database
        self.tokens = tokens
        self.docker = docker
        self.logger = logger
        self.passwd = passwd
    }

    /// Creates the job row and its user token in one transaction; returns the token.
    public func configure(_ request: ConfigureRequest) async throws(BDockerError) -> (token: String, job: JobRecord) {
        try tokens.verifyAdmin(request.adminToken)
        let creds = request.userCredentials
        let job = try validatedJob(creds)
        do {
            return try await database.pool.write { db in
                var row = job
                do {
                    try row.insert(db)
                } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                    throw BDockerError.conflict("job \(row.jobKey) is already configured on this node; clean it first")
                }
                let token = try tokens.issueToken(forJob: row.id!, db: db)
                return (token, row)
            }
        } catch let error as BDockerError {
            throw error
        } catch {
            throw .internalFault("configure of job \(job.jobKey) failed: \(error)")
        }
    }

    /// Force-removes the job's containers, then revokes the token and marks the job cleaned.
    /// If a container cannot be removed the job stays configured, so the epilog can retry.
    public func clean(_ request: CleanRequest) async throws(BDockerError) -> JobRecord {
        try tokens.verifyAdmin(request.adminToken)
        let session = try await tokens.authenticate(request.token)
        let removed = try await removeAllContainers(jobID: session.jobID)
        if removed > 0 { logger.info("job \(session.jobKey): removed \(removed) container(s)") }
        do {
            return try await database.pool.write { db in
                try tokens.revoke(request.token, db: db)
                guard var job = try JobRecord.fetchOne(db, key: session.jobID) else {
                    throw BDockerError.notFound("job \(session.jobKey) is not known on this node")
                }
                job.state = .cleaned
                job.cleanedAt = Date().timeIntervalSince1970
                try job.update(db)
                return job
            }
        } catch let error as BDockerError {
            throw error
        } catch {
            throw .internalFault("clean of job \(session.jobKey) failed: \(error)")
        }
    }

    /// Checks what the prolog sent against the passwd database and the naming rules.
    func validatedJob(_ creds: UserCredentials) throws(BDockerError) -> JobRecord {
        guard !creds.user.isEmpty else { throw .invalidInput("user_credentials.user is empty") }
        guard let entry = passwd(creds.user) else {
            throw .invalidInput("user '\(creds.user)' is not in the passwd database of this node")
        }
        guard entry.uid == creds.uid, entry.gid == creds.gid else {
            throw .invalidInput("user '\(creds.user)' is uid \(entry.uid) gid \(entry.gid) here, not uid \(creds.uid) gid \(creds.gid)")
        }
        guard entry.home == creds.home else {
            throw .invalidInput("user '\(creds.user)' has HOME \(entry.home) here, not \(creds.home)")
        }
        guard entry.uid != 0 else {
            throw .forbidden("bdocker does not run jobs of root (uid 0)")
        }
        guard Self.isSafeName(creds.job.id) else {
            throw .invalidInput("job id '\(creds.job.id)' must be 1-64 letters, digits, '.', '_' or '-'")
        }
        var task = creds.job.taskID
        if task == "undefined" || task == "" { task = nil }
        if let task, !(task.allSatisfy(\.isNumber) && (1...9).contains(task.count)) {
            throw .invalidInput("task id '\(task)' must be a positive whole number")
        }
        if let spool = creds.job.spool, !spool.hasPrefix("/") {
            throw .invalidInput("job spool directory '\(spool)' must be an absolute path")
        }
        return JobRecord(batchJobID: creds.job.id, taskID: task, user: entry.name, uid: entry.uid, gid: entry.gid,
                         home: entry.home, spoolDir: creds.job.spool)
    }

    /// Job ids end up in cgroup and file names: keep them to a safe alphabet.
    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) }
    }
}
