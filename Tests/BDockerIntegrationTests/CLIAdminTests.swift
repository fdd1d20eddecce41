import BDAPI
import BDCore
import BDCredentials
import BDTestSupport
import Foundation
import Logging
import Testing

/// `bdocker configure` and `bdocker clean` as the prolog and epilog run them: the real binary,
/// as root, for a real non-root user from tools/test-env.sh.
@Suite("CLI configure/clean", .serialized, .requires(.root, .cgroupsV1, .testUsers))
struct CLIAdminTests {
    let config: TestConfig

    init() throws {
        config = try TestConfig()
    }

    func withDaemon(_ body: (RunningDaemon, Daemon) async throws -> Void) async throws {
        try #require(geteuid() == 0, "these tests run as root, like a prolog")
        let daemon = try Daemon(settings: config.settings, logger: Logger(label: "test"))
        let server = try await RunningDaemon.start(router: try daemon.router(), socket: config.socketPath)
        do {
            try await body(server, daemon)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func bdocker(_ args: [String], server: RunningDaemon, env: [String: String]) async throws -> CommandResult {
        var environment = ["PATH": "/usr/bin:/bin"]
        for (k, v) in env { environment[k] = v }
        return try await runCommand(Repo.binDir + "/bdocker", args + ["--config", config.configPath, "-H", server.endpoint],
                              environment: environment)
    }

    static func uniqueJob() -> String { "\(Int.random(in: 100_000...999_999))" }

    @Test func configureWritesAPrivateTokenFileAndCleanRemovesIt() async throws {
        let user = try testUser()
        try await withDaemon { server, daemon in
            let job = Self.uniqueJob()
            let env = ["JOB_ID": job, "USER": user.name, "SGE_TASK_ID": "undefined"]
            let result = try await bdocker(["configure"], server: server, env: env)
            #expect(result.status == 0, "\(result.stderr)")
            let path = "\(user.home)/.bdocker_token_\(job)"
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == path)
            var st = stat()
            #expect(lstat(path, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o600)
            #expect(Int(st.st_uid) == user.uid && Int(st.st_gid) == user.gid)
            #expect((st.st_mode & S_IFMT) == S_IFREG)
            let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let tokens = try daemon.tokenController()
            #expect(try await tokens.authenticate(token).user == user.name)

            let cleaned = try await bdocker(["clean"], server: server, env: env)
            #expect(cleaned.status == 0, "\(cleaned.stderr)")
            #expect(!FileManager.default.fileExists(atPath: path))
            await #expect(throws: BDockerError.self) { try await tokens.authenticate(token) }
        }
    }

    @Test func arrayTaskGetsItsOwnFile() async throws {
        let user = try testUser()
        try await withDaemon { server, _ in
            let job = Self.uniqueJob()
            var paths: [String] = []
            for task in ["1", "2"] {
                let env = ["JOB_ID": job, "USER": user.name, "SGE_TASK_ID": task]
                let result = try await bdocker(["configure"], server: server, env: env)
                #expect(result.status == 0, "\(result.stderr)")
                paths.append("\(user.home)/.bdocker_token_\(job).\(task)")
                #expect(FileManager.default.fileExists(atPath: paths.last!))
            }
            for task in ["1", "2"] {
                #expect(try await bdocker(["clean"], server: server, env: ["JOB_ID": job, "USER": user.name, "SGE_TASK_ID": task]).status == 0)
            }
            #expect(paths.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
        }
    }

    @Test func plantedSymlinkIsRefusedAndItsTargetUntouched() async throws {
        let user = try testUser()
        try await withDaemon { server, _ in
            let job = Self.uniqueJob()
            let target = config.dir.write("victim", "precious\n", mode: 0o644)
            let path = "\(user.home)/.bdocker_token_\(job)"
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
            defer { unlink(path) }
            let env = ["JOB_ID": job, "USER": user.name]
            let result = try await bdocker(["configure"], server: server, env: env)
            #expect(result.status != 0)
            #expect(result.stderr.contains("symlink"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious\n")
            var st = stat()
            #expect(stat(target, &st) == 0 && st.st_uid == 0 && st.st_mode & 0o777 == 0o644)
            // The failed configure was rolled back: once the link is gone the job configures.
            unlink(path)
            let retry = try await bdocker(["configure"], server: server, env: env)
            #expect(retry.status == 0, "\(retry.stderr)")
            #expect(try await bdocker(["clean"], server: server, env: env).status == 0)
        }
    }

    @Test func errorsAreOneLineAndNonZero() async throws {
        let user = try testUser()
        try await withDaemon { server, _ in
            let noJob = try await bdocker(["configure"], server: server, env: ["USER": user.name])
            #expect(noJob.status != 0 && noJob.stderr.contains("JOB_ID"))
            let noUser = try await bdocker(["configure"], server: server, env: ["JOB_ID": "1", "USER": "no-such-user-here"])
            #expect(noUser.status != 0 && noUser.stderr.contains("passwd"))
            let noFile = try await bdocker(["clean"], server: server, env: ["JOB_ID": "424242", "USER": user.name])
            #expect(noFile.status != 0 && noFile.stderr.contains("not configured"))
            for r in [noJob, noUser, noFile] { #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)") }
        }
        // The daemon is down: a clear error, not a hang.
        let down = try await runCommand(Repo.binDir + "/bdocker", ["configure", "--config", config.configPath, "-H", "127.0.0.1:1"],
                                  environment: ["JOB_ID": "1", "USER": user.name, "PATH": "/usr/bin:/bin"])
        #expect(down.status != 0 && down.stderr.contains("cannot reach bdockerd"), "\(down.stderr)")
    }
}
