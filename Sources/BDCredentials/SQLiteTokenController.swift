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

    public init(pool: DatabasePool, adminToken: AdminToken) {
        self.pool = pool
        self.adminToken = adminToken
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

    public func issueToken(forJob jobID: Int64, db: Database) throws -> String {
        let secret = TokenSecret.generate()
        try TokenRecord(hash: TokenSecret.hash(secret), jobID: jobID).insert(db)
        return secret
    }

    public func authenticate(_ presented: String?) async throws(BDockerError) -> UserSession {
        guard let presented, !presented.isEmpty else {
            throw .unauthorized("a token is required (--token, $BDOCKER_TOKEN, or the job's token file)")
        }
        let hash = TokenSecret.hash(presented)
        let job = try await BDockerError.wrapping("token lookup failed") {
            try await pool.read { db in try JobRecord.live(tokenHash: hash).fetchOne(db) }
        }
        guard let job, let id = job.id else {
            if adminToken.matches(presented) {
                throw .forbidden("the admin token cannot run user commands; use the job's token")
            }
            throw .unauthorized("the token is not valid (unknown, or its job was cleaned)")
        }
        return UserSession(jobID: id, jobKey: job.jobKey, user: job.user, uid: job.uid, gid: job.gid, home: job.home)
    }

    public func revokeAll(forJob jobID: Int64, db: Database) throws {
        try TokenRecord.unrevoked(jobID: jobID).updateAll(db, TokenRecord.Columns.revokedAt.set(to: Date().timeIntervalSince1970))
    }
}

/// Making and hashing token secrets.
public enum TokenSecret {
    /// `bytes` from the system CSPRNG, as lowercase hex (32 bytes: 256 bits, a token's size).
    public static func generate(bytes: Int = 32) -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    public static func hash(_ secret: String) -> String {
        // Hex by table: String(format:) per byte costs more than the hash itself.
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Data(secret.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// Compares without an early exit, so timing does not reveal a prefix.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
