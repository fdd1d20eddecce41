import BDCore
import BDCredentials
import BDStore
import BDTestSupport
import Foundation
import GRDB
import Testing

@Suite("Credentials: paths")
struct PathPolicyTests {
    let dir = TempDir("bdocker-home")
    let home: String

    init() throws {
        home = dir.mkdir("home/ann")
        _ = dir.mkdir("home/ann2")
        _ = dir.mkdir("home/ann/data")
        try FileManager.default.createSymbolicLink(atPath: home + "/etc-link", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: home + "/data-link", withDestinationPath: home + "/data")
        try FileManager.default.createSymbolicLink(atPath: home + "/sibling", withDestinationPath: dir.file("home/ann2"))
    }

    @Test func insideHomeIsAllowed() throws {
        let real = try #require(realpath(home, nil).map { p in defer { free(p) }; return String(cString: p) })
        #expect(try AccessPolicy.resolveInsideHome(home, home: home) == real)
        #expect(try AccessPolicy.resolveInsideHome(home + "/data", home: home) == real + "/data")
        #expect(try AccessPolicy.resolveInsideHome(home + "/data-link", home: home) == real + "/data")
        #expect(try AccessPolicy.resolveInsideHome(home + "/data/../data", home: home) == real + "/data")
        // A destination that does not exist yet is judged by its parent.
        #expect(try AccessPolicy.resolveInsideHome(home + "/new-file", home: home) == real + "/new-file")
    }

    @Test(arguments: ["/etc", "/etc/passwd", "/", "HOME/../ann2", "HOME/../ann2/x", "HOME/etc-link",
                      "HOME/etc-link/passwd", "HOME/sibling", "HOME/..", "HOME2"])
    func escapesAreRefused(_ template: String) {
        let path = template.replacingOccurrences(of: "HOME", with: home)
        #expect(throws: BDockerError.self) { try AccessPolicy.resolveInsideHome(path, home: home) }
        do {
            _ = try AccessPolicy.resolveInsideHome(path, home: home)
        } catch {
            #expect(error.httpStatus == 403 || error.httpStatus == 404, "\(path): \(error)")
        }
    }

    @Test func prefixOfNameIsNotInside() {
        #expect(!AccessPolicy.isInside("/home/ann2", "/home/ann"))
        #expect(!AccessPolicy.isInside("/home/ann2/x", "/home/ann"))
        #expect(AccessPolicy.isInside("/home/ann/x", "/home/ann"))
        #expect(AccessPolicy.isInside("/home/ann", "/home/ann/"))
    }

    @Test func relativeAndMissingParents() {
        #expect(throws: BDockerError.invalidInput("'data' is not an absolute path")) {
            try AccessPolicy.resolveInsideHome("data", home: home)
        }
        #expect(throws: BDockerError.self) { try AccessPolicy.resolveInsideHome(home + "/no/such/dir", home: home) }
    }
}

@Suite("Credentials: container ids")
struct ContainerRuleTests {
    let owned: [(id: String, names: [String])] = [
        ("abc123def456" + String(repeating: "0", count: 52), ["/happy_ann"]),
        ("abc999" + String(repeating: "1", count: 58), ["/other"]),
        ("fff000" + String(repeating: "2", count: 58), []),
    ]

    @Test func fullIdPrefixAndName() throws {
        #expect(try AccessPolicy.resolveContainer(owned[0].id, owned: owned) == owned[0].id)
        #expect(try AccessPolicy.resolveContainer("abc1", owned: owned) == owned[0].id)
        #expect(try AccessPolicy.resolveContainer("f", owned: owned) == owned[2].id)
        #expect(try AccessPolicy.resolveContainer("happy_ann", owned: owned) == owned[0].id)
    }

    @Test func emptyAmbiguousAndUnknown() {
        #expect(throws: BDockerError.self) { try AccessPolicy.resolveContainer("", owned: owned) }
        do {
            _ = try AccessPolicy.resolveContainer("abc", owned: owned)
            Issue.record("ambiguous prefix accepted")
        } catch {
            #expect(error.message.contains("ambiguous"))
        }
        // Someone else's container is simply not in `owned`: same answer as an unknown id.
        #expect(throws: BDockerError.notFound("no such container: 999")) { try AccessPolicy.resolveContainer("999", owned: owned) }
    }
}

@Suite("Credentials: tokens")
struct TokenTests {
    let dir = TempDir("bdocker-tokens")
    let db: BDockerDatabase
    let admin: AdminToken
    let adminSecret = TokenSecret.generate()
    let tokens: SQLiteTokenController

    init() throws {
        db = try BDockerDatabase.open(path: dir.file("w.sqlite"), role: "working", migrationsDir: nil)
        admin = try AdminToken(secret: adminSecret)
        tokens = SQLiteTokenController(pool: db.pool, adminToken: admin)
    }

    func newJob(_ id: String) throws -> (Int64, String) {
        try db.pool.write { db in
            var job = JobRecord(batchJobID: id, taskID: nil, user: "ann", uid: 1000, gid: 1000, home: "/home/ann", spoolDir: nil)
            try job.insert(db)
            return (job.id!, try tokens.issueToken(for: job, db: db))
        }
    }

    @Test func tokensAreRandomAndStoredHashed() throws {
        let (_, a) = try newJob("1")
        let (_, b) = try newJob("2")
        #expect(a != b)
        #expect(a.count == 64 && a.allSatisfy(\.isHexDigit))  // 256 bits
        let stored = try db.pool.read { try String.fetchAll($0, sql: "SELECT hash FROM tokens") }
        #expect(!stored.contains(a) && !stored.contains(b))
        #expect(stored.contains(TokenSecret.hash(a)))
    }

    @Test func lifecycle() async throws {
        let (jobID, token) = try newJob("3")
        let session = try await tokens.authenticate(token)
        #expect(session.jobID == jobID)
        #expect(session.user == "ann" && session.uid == 1000 && session.home == "/home/ann")
        try await db.pool.write { try tokens.revokeAll(forJob: jobID, db: $0) }
        await #expect(throws: BDockerError.self) { try await tokens.authenticate(token) }
    }

    /// Lookups are cached; the cache forgets a job's tokens with their revocation however
    /// lookups interleave with it, and a revocation rolled back revokes nothing.
    @Test func revocationWinsOverCachedAndConcurrentLookups() async throws {
        let (jobID, token) = try newJob("4")
        let (otherJob, other) = try newJob("5")
        #expect(try await tokens.authenticate(token).jobID == jobID)
        #expect(try await tokens.authenticate(other).jobID == otherJob)
        try? await db.pool.write { db in
            try tokens.revokeAll(forJob: jobID, db: db)
            throw CancellationError()  // rolls the revocation back
        }
        #expect(try await tokens.authenticate(token).jobID == jobID)

        let lookups = Task { for _ in 0..<2000 { _ = try? await tokens.authenticate(token) } }
        try await db.pool.write { try tokens.revokeAll(forJob: jobID, db: $0) }
        for _ in 0..<200 {
            await #expect(throws: BDockerError.self) { try await tokens.authenticate(token) }
        }
        await lookups.value
        await #expect(throws: BDockerError.self) { try await tokens.authenticate(token) }
        #expect(try await tokens.authenticate(other).jobID == otherJob, "another job's token is untouched")
    }

    @Test func missingAndUnknownTokensAreUnauthorized() async {
        for bad in [nil, "", "deadbeef"] as [String?] {
            do {
                _ = try await tokens.authenticate(bad)
                Issue.record("accepted \(String(describing: bad))")
            } catch {
                #expect(error.httpStatus == 401)
            }
        }
    }

    @Test func userTokenOnAdminCallIsForbidden() throws {
        let (_, token) = try newJob("4")
        #expect(throws: BDockerError.self) { try tokens.verifyAdmin(token) }
        do { try tokens.verifyAdmin(token) } catch { #expect(error.httpStatus == 403) }
        do { try tokens.verifyAdmin(nil) } catch { #expect(error.httpStatus == 401) }
        #expect(throws: Never.self) { try tokens.verifyAdmin(adminSecret) }
    }

    @Test func adminTokenOnUserCallIsForbidden() async {
        do {
            _ = try await tokens.requireUserToken(adminSecret)
            Issue.record("admin token accepted as a user token")
        } catch {
            #expect(error.httpStatus == 403)
        }
    }

    @Test func adminTokenFileMustBePrivate() throws {
        let path = dir.write("admin", adminSecret, mode: 0o644)
        do {
            _ = try AdminToken.load(path: path, requireRootOwner: false)
            Issue.record("a world-readable admin token file was accepted")
        } catch {
            #expect(error.message.contains("mode 644"))
        }
        chmod(path, 0o640)
        #expect(throws: BDockerError.self) { try AdminToken.load(path: path, requireRootOwner: false) }
        chmod(path, 0o600)
        let loaded = try AdminToken.load(path: path, requireRootOwner: geteuid() == 0)
        #expect(loaded.matches(adminSecret))
        let link = dir.file("admin-link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        #expect(throws: BDockerError.self) { try AdminToken.load(path: link, requireRootOwner: false) }
    }
}
