import BDCore
import BDStore
import Crypto
import Foundation
import GRDB

/// The default credentials driver (`[credentials] controller = TokenController`): random
/// 256-bit user tokens kept as SHA-256 hashes in the daemon's database, and one admin token read
/// from a root-only file.
public struct SQLiteTokenController: TokenController {
    public static let name = "TokenController"

    let pool: DatabasePool
    let adminToken: AdminToken
    /// Sessions of live tokens already looked up: a user call then needs no database read for
    /// its token. This daemon is the only writer of tokens, and forgets a job's sessions when
    /// it revokes them. One cache per database pool, shared by every controller on it, so a
    /// revocation through one is seen by all.
    let sessions: SessionCache

    public init(pool: DatabasePool, adminToken: AdminToken) {
        self.pool = pool
        self.adminToken = adminToken
        self.sessions = SessionCache.shared(by: pool)
    }

    public func verifyAdmin(_ presented: String?) throws(BDockerError) {
        guard let presented, !presented.isEmpty else {
            throw .unauthorized("this call needs the admin token")
        }
        guard adminToken.matches(presented) else {
            // A valid user token here is a permission problem, not a bad credential.
            throw .forbidden("this call needs the admin token; a user token cannot configure, clean or notify")
        }
    }

    public func issueToken(for job: JobRecord, db: Database) throws -> String {
        guard let jobID = job.id else { throw BDockerError.internalFault("a token for a job that is not stored") }
        let secret = TokenSecret.generate()
        let hash = TokenSecret.hash(secret)
        try TokenRecord(hash: hash, jobID: jobID).insert(db)
        // The job's first call then finds its session without a read; only once committed.
        let session = Self.session(of: job, id: jobID), sessions = self.sessions, generation = sessions.generation
        db.afterNextTransaction(onCommit: { _ in sessions.remember(session, for: hash, ifStill: generation) }, onRollback: { _ in })
        return secret
    }

    public func authenticate(_ presented: String?) async throws(BDockerError) -> UserSession {
        guard let presented, !presented.isEmpty else {
            throw .unauthorized("a token is required (--token, $BDOCKER_TOKEN, or the job's token file)")
        }
        let hash = TokenSecret.hash(presented)
        if let known = sessions.session(hash) { return known }
        let generation = sessions.generation
        let job = try await BDockerError.wrapping("token lookup failed") {
            try await pool.read { db in try JobRecord.live(tokenHash: hash).fetchOne(db) }
        }
        guard let job, let id = job.id else {
            if adminToken.matches(presented) {
                throw .forbidden("the admin token cannot run user commands; use the job's token")
            }
            throw .unauthorized("the token is not valid (unknown, or its job was cleaned)")
        }
        let session = Self.session(of: job, id: id)
        sessions.remember(session, for: hash, ifStill: generation)
        return session
    }

    static func session(of job: JobRecord, id: Int64) -> UserSession {
        UserSession(jobID: id, jobKey: job.jobKey, user: job.user, uid: job.uid, gid: job.gid, home: job.home)
    }

    public func revokeAll(forJob jobID: Int64, db: Database) throws {
        try TokenRecord.unrevoked(jobID: jobID).updateAll(db, TokenRecord.Columns.revokedAt.set(to: Date().timeIntervalSince1970))
        // Now, and again once committed: a lookup that read the token as live before the
        // commit cannot cache it after (the generation moves on).
        sessions.forget(jobID: jobID)
        let sessions = self.sessions
        db.afterNextTransaction(onCommit: { _ in sessions.forget(jobID: jobID) }, onRollback: { _ in })
    }
}

/// Token hash → session, for live tokens only. Bounded: past `capacity` it starts again empty
/// (a lookup then costs one read, as without the cache).
final class SessionCache: @unchecked Sendable {
    private static let perPool = PerPool { SessionCache() }

    static func shared(by pool: DatabasePool) -> SessionCache { perPool.value(for: pool) }

    private let lock = NSLock()
    private var byHash: [String: UserSession] = [:]
    private var hashesByJob: [Int64: [String]] = [:]
    /// Moves on at every revocation; a lookup caches its result only if none happened meanwhile.
    private var revocations: UInt64 = 0
    static let capacity = 10_000

    func session(_ hash: String) -> UserSession? {
        lock.withLock { byHash[hash] }
    }

    var generation: UInt64 { lock.withLock { revocations } }

    func remember(_ session: UserSession, for hash: String, ifStill generation: UInt64) {
        lock.withLock {
            guard revocations == generation else { return }
            if byHash.count >= Self.capacity {
                byHash.removeAll(keepingCapacity: true)
                hashesByJob.removeAll(keepingCapacity: true)
            }
            if byHash.updateValue(session, forKey: hash) == nil { hashesByJob[session.jobID, default: []].append(hash) }
        }
    }

    func forget(jobID: Int64) {
        lock.withLock {
            revocations &+= 1
            for hash in hashesByJob.removeValue(forKey: jobID) ?? [] { byHash[hash] = nil }
        }
    }
}

/// Making and hashing token secrets.
public enum TokenSecret {
    /// `bytes` from the system CSPRNG, as lowercase hex (32 bytes: 256 bits, a token's size).
    public static func generate(bytes: Int = 32) -> String {
        var rng = SystemRandomNumberGenerator()
        return hex((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    public static func hash(_ secret: String) -> String {
        hex(Array(SHA256.hash(data: Data(secret.utf8))))
    }

    /// Lowercase hex by table: String(format:) per byte costs more than the hash itself.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Compares without an early exit, so timing does not reveal a prefix.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
