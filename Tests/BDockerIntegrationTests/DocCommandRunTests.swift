import BDCore
import BDTestSupport
import Foundation
import Testing

/// The `job` and `root` lines of Tests/Fixtures/doc-commands.txt, run as the docs show them
/// against a working node on the test engine: the real `bdocker` and `bdockerd` binaries,
/// found on PATH, with the node's config as `$BDOCKER_CONF_FILE` (DocCommandTests checks
/// that the list and the docs agree).
@Suite("Command lines in the docs, run", .serialized, .requires(.root, .cgroupsV1, .testUsers, .dockerEngine, .registry))
struct DocCommandRunTests {
    let list: DocCommands.List
    let path = Repo.binDir + ":/usr/bin:/bin"

    init() throws {
        list = try DocCommands.list()
    }

    /// As bdtest1 in a configured job, from HOME; `$DOC_HOME` is a directory of the user's in
    /// HOME holding `data/`, `run.env` (FROM_FILE=from-file) and `input.txt`; `$DOC_IMAGE` the
    /// test registry's busybox; `$DOC_NAME` a container name no other run uses.
    @Test func jobLinesRunAsTheUser() async throws {
        let entries = list.entries.filter { $0.kind == .job }
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = try await node.configure(user)
            let home = node.userDir(user, "doc")
            defer { try? FileManager.default.removeItem(atPath: home) }
            for (name, text) in [("run.env", "FROM_FILE=from-file\n"), ("input.txt", "input\n")] {
                try text.write(toFile: home + "/" + name, atomically: false, encoding: .utf8)
            }
            try FileManager.default.createDirectory(atPath: home + "/data", withIntermediateDirectories: false)
            let output = TempDir("bdocker-doccmds")
            for path in [home + "/run.env", home + "/input.txt", home + "/data", output.path] {
                chown(path, uid_t(user.uid), gid_t(user.gid))
            }
            let outcomes = try await DocCommands.run(entries, of: list, environment: [
                "PATH": path, "HOME": user.home, "JOB_ID": job, "BDOCKER_CONF_FILE": node.config.configPath,
                "DOC_HOME": home, "DOC_IMAGE": node.image, "DOC_NAME": "calc-\(Int.random(in: 100_000...999_999))",
            ], as: user, in: output.path)
            DocCommands.expect(entries, outcomes, of: list)
        }
    }

    /// As root, with the node serving `$BDOCKER_CONF_FILE` on `$DOC_SOCKET`; `$DOC_IDLE_CONFIG`
    /// is a node config nobody serves (`--check-config` wants its socket free); task
    /// `$DOC_TASK` of array job `$DOC_JOB` of `$DOC_USER` is configured, for `clean`.
    @Test func rootLinesRunBesideTheNode() async throws {
        let entries = list.entries.filter { $0.kind == .root }
        try await ContainerCommandTests().withNode { node in
            let user = try testUser()
            let job = "\(Int.random(in: 100_000...999_999))", task = "2"
            let jobEnvironment = ["JOB_ID": job, "SGE_TASK_ID": task, "USER": user.name, "PATH": path,
                                  "BDOCKER_CONF_FILE": node.config.configPath]
            let configure = try await runCommand(Repo.binDir + "/bdocker", ["configure"], environment: jobEnvironment)
            try #require(configure.status == 0, "configure: \(configure.stderr)")
            let engine = TestEnvironment.load()["BDOCKER_TEST_DOCKER_URL"] ?? "unix:///run/bdocker-test/docker.sock"
            let idle = try TestConfig(replacing: ["base_url = unix:///var/run/docker.sock": "base_url = \(engine)"])
            let dir = TempDir("bdocker-doccmds")
            let outcomes = try await DocCommands.run(entries, of: list, environment: [
                "PATH": path, "BDOCKER_CONF_FILE": node.config.configPath, "DOC_IDLE_CONFIG": idle.configPath,
                "DOC_SOCKET": node.config.socketPath, "DOC_USER": user.name, "DOC_JOB": job, "DOC_TASK": task,
            ], in: dir.path)
            DocCommands.expect(entries, outcomes, of: list)
            // Should the doc's clean have failed, the job still goes.
            _ = try? await runCommand(Repo.binDir + "/bdocker", ["clean"], environment: jobEnvironment)
        }
    }
}
