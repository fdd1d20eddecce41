import ArgumentParser
import BDClient
import BDConfig
import BDCore
import Foundation

/// `bdocker configure`: the prolog's call. Creates the job's token and environment on the
/// working node and writes the token into the user's HOME.
struct Configure: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set up bdocker for a batch job (root, in the prolog).",
        discussion: "Reads JOB_ID, SGE_TASK_ID, USER and SGE_JOB_SPOOL_DIR from the environment.")

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var job: JobOptions

    @Option(name: .long, help: "Job spool directory (default: $SGE_JOB_SPOOL_DIR).")
    var spool: String?

    func run() async throws {
        do {
            let env = ProcessInfo.processInfo.environment
            guard geteuid() == 0 else { throw BDockerError.forbidden("configure must run as root (in the prolog)") }
            let settings = try connection.settings()
            let entry = try job.passwdEntry()
            let (jobID, task) = try job.ids()
            let client = try connection.client(settings: settings)
            let request = ConfigureRequest(
                userCredentials: UserCredentials(user: entry.name, uid: entry.uid, gid: entry.gid, home: entry.home,
                                                 job: JobInfo(id: jobID, taskID: task, spool: (spool ?? env["SGE_JOB_SPOOL_DIR"]).flatMap { $0.isEmpty ? nil : $0 })))
            let token: String = try await client.call(.POST, "/configuration", body: request)
            let path = TokenFile.path(home: entry.home, clientFile: settings.credentials.tokenClientFile, jobID: jobID, taskID: task)
            do {
                try TokenFile.create(path: path, token: token, uid: entry.uid, gid: entry.gid)
            } catch {
                // Without its file the token is useless: undo the configure so nothing is left.
                let _: String? = try? await client.call(.DELETE, "/clean", body: CleanRequest(job: JobInfo(id: jobID, taskID: task), token: token))
                throw error
            }
            print(path)
        } catch {
            CommandLineExit.fail(error)
        }
    }
}

/// `bdocker clean`: the epilog's call. Cleans the job named by the batch system (never the one
/// a user-owned file names), then removes the job's token file.
struct Clean: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tear down bdocker for a batch job (root, in the epilog).",
        discussion: """
            Cleans the job JOB_ID (and SGE_TASK_ID) names, or --job-id/--task-id: its containers \
            are removed, its cgroups too, its accounting record queued and its token revoked. \
            Then the token file in the user's HOME is removed; what it holds is never trusted.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .long, help: "Also check that this token is the job's (refused otherwise).")
    var token: String?

    @OptionGroup var job: JobOptions

    @Flag(name: .long, help: .hidden)
    var byJob = false

    func run() async throws {
        do {
            guard geteuid() == 0 else { throw BDockerError.forbidden("clean must run as root (in the epilog)") }
            let settings = try connection.settings()
            let (jobID, task) = try job.ids()
            let request = CleanRequest(job: JobInfo(id: jobID, taskID: task), token: token)
            let result: Result<String, BDockerError> = await Result(catching: { () async throws(BDockerError) -> String in
                try await connection.client(settings: settings).call(.DELETE, "/clean", body: request)
            })
            // Cleaned now, or not configured (already cleaned, or the prolog failed): the
            // token file is useless either way.
            switch result {
            case .success, .failure(.notFound(_)):
                if let entry = try? job.passwdEntry() {
                    TokenFile.remove(path: TokenFile.path(home: entry.home, clientFile: settings.credentials.tokenClientFile,
                                                          jobID: jobID, taskID: task))
                }
            default:
                break
            }
            print(try result.get())
        } catch {
            CommandLineExit.fail(error)
        }
    }
}

/// The job a prolog or epilog call is about: from the batch system's environment unless given.
struct JobOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The job's user (default: $USER).")
    var user: String?

    @Option(name: .long, help: "Job id (default: $JOB_ID).")
    var jobId: String?

    @Option(name: .long, help: "Array task id (default: $SGE_TASK_ID unless 'undefined').")
    var taskId: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func passwdEntry() throws(BDockerError) -> PasswdEntry {
        guard let name = user ?? environment["USER"], !name.isEmpty else {
            throw .invalidInput("no user: set USER or pass -u/--user")
        }
        guard let entry = PasswdEntry.lookup(name: name) else {
            throw .invalidInput("user '\(name)' is not in the passwd database")
        }
        return entry
    }

    func ids() throws(BDockerError) -> (job: String, task: String?) {
        guard let job = jobId ?? environment["JOB_ID"], !job.isEmpty else {
            throw .invalidInput("no job id: set JOB_ID or pass --job-id")
        }
        return (job, TokenFile.taskID(fromEnvironment: taskId ?? environment["SGE_TASK_ID"]))
    }
}
