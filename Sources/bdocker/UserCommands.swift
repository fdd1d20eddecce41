import ArgumentParser
import BDClient
import BDConfig
import BDCore
import Foundation

/// Options of every job-side command: the daemon and the job's token.
struct UserOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("token"), help: "The job's token (default: $BDOCKER_TOKEN, else $HOME/.bdocker_token_<job>[.<task>] of the job the environment names: JOB_ID and SGE_TASK_ID, or SLURM_JOB_ID, SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID). Prefer $BDOCKER_TOKEN: an option shows in every user's ps.")
    var tokenOption: String?

    /// `--token`, else `$BDOCKER_TOKEN`, else nil (the token file).
    var token: String? {
        if let tokenOption { return tokenOption }
        if let env = ProcessInfo.processInfo.environment["BDOCKER_TOKEN"], !env.isEmpty { return env }
        return nil
    }

    /// The config if there is one to read: a missing default file means defaults; a file named
    /// by --config or $BDOCKER_CONF_FILE must exist.
    func settings() throws(BDockerError) -> Settings? {
        let explicit = connection.config ?? ProcessInfo.processInfo.environment[SettingsLoader.environmentVariable]
        if explicit == nil && !FileManager.default.fileExists(atPath: SettingsLoader.defaultPath) { return nil }
        return try connection.settings()
    }

    func resolve() throws(BDockerError) -> (DaemonClient, String) {
        let settings = connection.host == nil || token == nil ? try settings() : nil
        let client = try connection.client(settings: settings)
        if let token { return (client, token) }
        let env = ProcessInfo.processInfo.environment
        guard let job = TokenFile.job(fromEnvironment: env) else {
            throw .unauthorized("no token: pass --token, or run inside a job (neither JOB_ID nor SLURM_JOB_ID is set)")
        }
        guard let home = env["HOME"] ?? PasswdEntry.lookup(uid: Int(getuid()))?.home else {
            throw .unauthorized("no token: HOME is not set; pass --token")
        }
        let path = TokenFile.path(home: home, clientFile: settings?.credentials.tokenClientFile ?? ".bdocker_token",
                                  jobID: job.id, taskID: job.task)
        return (client, try TokenFile.read(path: path))
    }
}

/// Runs a command body, turning any error into one line on stderr and exit status 1.
func guarded(_ body: () async throws -> Void) async {
    do {
        try await body()
    } catch {
        CommandLineExit.fail(error)
    }
}

/// `run`'s own failures exit as docker's do, so a script can tell them from the container's
/// exit code: 127 when the command is not found, 126 when it cannot be invoked, 125 for any
/// other failure of bdocker or the engine before the container ran.
enum RunExitStatus {
    static func code(for error: any Error) -> Int32 {
        let message = ((error as? BDockerError)?.message ?? "\(error)").lowercased()
        if message.contains("executable file not found") || message.contains("no such file or directory") && message.contains("exec") {
            return 127
        }
        if message.contains("permission denied") && message.contains("exec") { return 126 }
        return 125
    }
}

/// Runs `body` for each container named, as docker does for several: a failure is one line
/// naming that container and the rest still run. Returns whether any failed.
func forEachContainer(_ containers: [String], _ body: (String) async throws -> Void) async -> Bool {
    var failed = false
    for container in containers {
        do {
            try await body(container)
        } catch {
            failed = true
            FileHandle.standardError.write(Data("bdocker: \(container): \((error as? BDockerError)?.message ?? "\(error)")\n".utf8))
        }
    }
    return failed
}

/// Prints each removal as docker does (`done` of what went on stdout, a line per failure on
/// stderr) and returns whether any failed.
func reportRemovals(_ results: [RemoveResult], done: (String) -> String) -> Bool {
    var failed = false
    for r in results {
        if r.removed { print(done(r.container)) } else {
            failed = true
            FileHandle.standardError.write(Data("bdocker: \(r.container): \(r.error ?? "not removed")\n".utf8))
        }
    }
    return failed
}

func writeOut(_ kind: StreamFrameKind, _ payload: [UInt8]) {
    switch kind {
    case .stdout: FileHandle.standardOutput.write(Data(payload))
    case .stderr: FileHandle.standardError.write(Data(payload))
    case .progress: FileHandle.standardOutput.write(Data((String(decoding: payload, as: UTF8.self) + "\n").utf8))
    case .end, .container, .stdin, .resize, .request: break
    }
}

func printJSON(_ value: JSONText) {
    print(value.text)
}

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pull an image from a registry.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Print only the image name, no progress.") var quiet = false
    @Argument(help: "NAME[:TAG] (the tag defaults to latest).") var image: String

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let display = PullDisplay(mode: PullDisplay.mode(quiet: quiet))
            let source: String = try await client.streamed(.POST, "/pull", body: PullRequest(token: token, source: image)) { kind, payload in
                if kind == .progress { display.show(payload) } else { writeOut(kind, payload) }
            }
            print(quiet ? source : "pulled \(source)")
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a new container.",
        discussion: "Everything after IMAGE is the container's command. Without -d the output streams and bdocker exits with the container's exit code.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Run in the background and print the container id.") var detach = false
    @Option(name: .shortAndLong, help: "Working directory inside the container.") var workdir: String?
    @Option(name: .shortAndLong, help: "Bind mount HOST:CONTAINER[:ro]; HOST must be inside your HOME or a bind root of the site. Repeatable.")
    var volume: [String] = []
    @Option(name: .shortAndLong, help: "Set an environment variable NAME=value (a bare NAME takes its value from your environment). Repeatable.")
    var env: [String] = []
    @Option(name: .customLong("env-file"), help: "Read environment variables from FILE: one NAME=value (or NAME) per line; # comments. Repeatable.")
    var envFile: [String] = []
    @Option(help: "Name the container (use it instead of the id in every command).") var name: String?
    @Option(help: "Replace the image's ENTRYPOINT (\"\" clears it).") var entrypoint: String?
    @Flag(name: .customLong("rm"), help: "Remove the container when it exits.") var autoRemove = false
    @Option(name: .customLong("sig-proxy"), help: "Forward the signals bdocker receives (Ctrl-C, TERM, HUP, ...) to the attached container (true|false).")
    var sigProxy = true
    @Flag(name: .shortAndLong, help: "Keep stdin open: attached, bdocker's stdin goes to the container until its EOF.")
    var interactive = false
    @Flag(name: .shortAndLong, help: "Give the container a terminal; with -i on a terminal, yours is in raw mode while attached.")
    var tty = false
    @Argument(help: "The image.") var image: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() async {
        do {
            try await runContainer()
        } catch {
            CommandLineExit.fail(error, code: RunExitStatus.code(for: error))
        }
    }

    func runContainer() async throws {
        // As docker: -it needs a terminal to read from, checked before anything is created,
        // and refused as docker's own client refuses it (status 1, not 125).
        if interactive && tty && !detach && isatty(STDIN_FILENO) == 0 {
            CommandLineExit.fail("the input device is not a TTY", code: 1)
        }
        do {
            let (client, token) = try options.resolve()
            let home = ProcessInfo.processInfo.environment["HOME"] ?? "/"
            // Relative host paths are relative to the current directory, as with docker.
            let volumes = volume.map { v -> String in
                guard !v.hasPrefix("/"), let colon = v.firstIndex(of: ":") else { return v }
                let host = String(v[..<colon])
                let base = host.hasPrefix("~") ? home + host.dropFirst() : FileManager.default.currentDirectoryPath + "/" + host
                return base + v[colon...]
            }
            let environment = try EnvironmentOptions.entries(files: envFile, flags: env,
                                                             clientEnvironment: ProcessInfo.processInfo.environment)
            let request = RunRequest(token: token, imageID: image, script: command, detach: detach, workingDir: workdir,
                                     volumes: volumes, env: environment, name: name, entrypoint: entrypoint,
                                     autoRemove: autoRemove, interactive: interactive, tty: tty)
            if detach {
                let id: String = try await client.call(.PUT, "/run", body: request)
                print(id)
                return
            }
            let onFrame = { (proxy: SignalProxy?) in
                { (kind: StreamFrameKind, payload: [UInt8]) in
                    if kind == .container { proxy?.forward(to: String(decoding: payload, as: UTF8.self)) }
                    writeOut(kind, payload)
                }
            }
            guard interactive || tty else {
                let proxy = sigProxy ? SignalProxy(client: client, token: token) : nil
                let result: RunResult = try await client.streamed(.PUT, "/run", body: request, onFrame: onFrame(proxy))
                Foundation.exit(Int32(truncatingIfNeeded: result.exitCode))
            }
            // -i or -t: the body carries stdin and the window's size as frames.
            let window = tty ? [STDOUT_FILENO, STDIN_FILENO].first { isatty($0) == 1 } : nil
            // The proxy first, so a signal never leaves the terminal raw; then raw mode, before
            // stdin is read: read in canonical mode, a ^D already typed (or sent by script(1))
            // would end the input, where on a raw terminal every key is the container's.
            let proxy = sigProxy || tty && interactive ? SignalProxy(client: client, token: token, forwarding: sigProxy) : nil
            if tty && interactive { _ = RawTerminal.enable(STDIN_FILENO) }
            let result: RunResult
            do {
                let frames = try AttachFrames(request: request, readStdin: interactive, terminal: window)
                result = try await client.streamed(.PUT, "/run", frames: frames, onFrame: onFrame(proxy))
            } catch {
                RawTerminal.restore()
                throw error
            }
            RawTerminal.restore()
            Foundation.exit(Int32(truncatingIfNeeded: result.exitCode))
        }
    }
}

struct Ps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your containers.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Show all containers (default shows just running).") var all = false
    @Flag(name: .shortAndLong, help: "Only display container ids.") var quiet = false
    @Option(help: "Format each row: a template such as '{{.ID}}\\t{{.Names}}' (fields ID, Image, Command, CreatedAt, RunningFor, Status, Ports, Names), 'table TEMPLATE' for aligned columns under headers, or 'json'.")
    var format: String?

    func run() async {
        await guarded {
            // A bad template is refused before anything is asked of the daemon.
            let template = try format.map { f throws(BDockerError) in try PsFormat(f) }
            let (client, token) = try options.resolve()
            let rows: [ContainerRow] = try await client.call(.GET, "/ps", query: ["token": token, "all": all ? "1" : "0"])
            if quiet {
                rows.forEach { print(String($0.id.prefix(12))) }
                return
            }
            if let template {
                print(try template.render(rows, now: Date()), terminator: "")
                return
            }
            print(PsTable.render(rows, now: Date()), terminator: "")
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a container's output.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Follow the output until the container stops.") var follow = false
    @Option(name: [.customShort("n"), .customLong("tail")], help: "Show only the last N lines (or all).") var tail = "all"
    @Flag(name: .shortAndLong, help: "Prefix each line with its time (RFC 3339).") var timestamps = false
    @Argument(help: "Container name, id or unique id prefix.") var container: String

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let query = ["token": token, "container_id": container, "follow": follow ? "1" : "0",
                         "tail": tail, "timestamps": timestamps ? "1" : "0"]
            let _: String = try await client.streamed(.GET, "/logs", query: query, onFrame: writeOut)
        }
    }
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show containers' details as a JSON list, as docker inspect does.")
    @OptionGroup var options: UserOptions
    @Argument(help: "Container names, ids or unique id prefixes.") var containers: [String]

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            var found: [JSONValue] = []
            let failed = await forEachContainer(containers) { container in
                found.append(try await client.call(.GET, "/inspect", query: ["token": token, "container_id": container]))
            }
            // As docker: the list of those found (possibly empty), then exit 1 if any was not.
            print(try JSONText(.array(found)).text)
            if failed { Foundation.exit(1) }
        }
    }
}

struct Rm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove containers.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Stop a running container first.") var force = false
    @Argument(help: "Container names, ids or unique id prefixes.") var containers: [String]

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let results: [RemoveResult] = try await client.call(.PUT, "/rm", body: RemoveRequest(token: token, containerID: containers, force: force))
            if reportRemovals(results, done: { $0 }) { Foundation.exit(1) }
        }
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop a running container.")
    @OptionGroup var options: UserOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait for it to stop before killing it (default 10).")
    var time: Int?
    @Argument(help: "Container name, id or unique id prefix.") var container: String

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let id: String = try await client.call(.PUT, "/stop", body: ContainerRequest(token: token, containerID: container,
                                                                                        timeoutSeconds: time))
            print(id)
        }
    }
}

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a running container, as you.",
        discussion: "Everything after CONTAINER is the command. bdocker exits with the command's exit code.")
    @OptionGroup var options: UserOptions
    @Option(name: .shortAndLong, help: "Set an environment variable NAME=value (a bare NAME takes its value from your environment). Repeatable.")
    var env: [String] = []
    @Option(name: .shortAndLong, help: "Working directory inside the container.") var workdir: String?
    @Argument(help: "Container name, id or unique id prefix.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() async {
        do {
            let (client, token) = try options.resolve()
            let environment = try EnvironmentOptions.entries(files: [], flags: env, clientEnvironment: ProcessInfo.processInfo.environment)
            let request = ExecRequest(token: token, containerID: container, script: command, env: environment, workingDir: workdir)
            let result: RunResult = try await client.streamed(.PUT, "/exec", body: request, onFrame: writeOut)
            Foundation.exit(Int32(truncatingIfNeeded: result.exitCode))
        } catch {
            CommandLineExit.fail(error, code: RunExitStatus.code(for: error))
        }
    }
}

struct Images: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the images this job pulled.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Only display image ids.") var quiet = false

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let rows: [ImageRow] = try await client.call(.GET, "/images", query: ["token": token])
            let shortID = { (row: ImageRow) in String(row.id.replacingOccurrences(of: "sha256:", with: "").prefix(12)) }
            if quiet {
                rows.filter { !$0.id.isEmpty }.forEach { print(shortID($0)) }
                return
            }
            let now = Date()
            let cells = rows.map { row -> [String] in
                // REPOSITORY and TAG as docker splits them: the tag follows the last ':' after the last '/'.
                var repository = row.reference, tag = "<none>"
                if let colon = row.reference.lastIndex(of: ":"), !row.reference[colon...].contains("/") {
                    repository = String(row.reference[..<colon])
                    tag = String(row.reference[row.reference.index(after: colon)...])
                }
                let created = ISO8601DateFormatter.withFractions.date(from: row.created)
                    ?? ISO8601DateFormatter().date(from: row.created)
                return [repository, tag, row.id.isEmpty ? "<gone>" : shortID(row),
                        created.map { PsTable.ago(Int64($0.timeIntervalSince1970), now: now) } ?? "",
                        row.id.isEmpty ? "" : ByteCountFormatter.string(fromByteCount: row.size, countStyle: .decimal)]
            }
            print(TextTable(header: ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows: cells, gap: 3).render(), terminator: "")
        }
    }
}

extension ISO8601DateFormatter {
    /// The engine's times carry nanoseconds.
    static var withFractions: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}

struct Rmi: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove images this job pulled.")
    @OptionGroup var options: UserOptions
    @Flag(name: .shortAndLong, help: "Remove even when a container of the job uses it.") var force = false
    @Argument(help: "Image references as pulled (NAME[:TAG]).") var images: [String]

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let results: [RemoveResult] = try await client.call(.PUT, "/rmi", body: RemoveImageRequest(token: token, images: images, force: force))
            if reportRemovals(results, done: { "Untagged: \($0)" }) { Foundation.exit(1) }
        }
    }
}

struct Kill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal to running containers (default KILL).")
    @OptionGroup var options: UserOptions
    @Option(name: .shortAndLong, help: "The signal: a name (TERM, SIGINT, ...) or a number.") var signal = "KILL"
    @Argument(help: "Container names, ids or unique id prefixes.") var containers: [String]

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let failed = await forEachContainer(containers) { container in
                let _: String = try await client.call(.PUT, "/kill", body: KillRequest(token: token, containerID: container, signal: signal))
                print(container)
            }
            if failed { Foundation.exit(1) }
        }
    }
}

/// `bdocker join`: Slurm's TaskProlog puts each task into the job's cgroup, so the job's own
/// processes are accounted apart from its containers (SGE's prolog does it by the shepherd's pid).
struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a process of the job into the job's cgroup (run by Slurm's TaskProlog).",
        discussion: "The process must be the job user's and in no bdocker job's cgroup yet.")
    @OptionGroup var options: UserOptions
    @Option(name: .long, help: "The process (default: $SLURM_TASK_PID).") var pid: Int?

    func run() async {
        await guarded {
            guard let pid = pid ?? ProcessInfo.processInfo.environment["SLURM_TASK_PID"].flatMap({ Int($0) }) else {
                throw BDockerError.invalidInput("no process: pass --pid or set SLURM_TASK_PID")
            }
            let (client, token) = try options.resolve()
            let reply: String = try await client.call(.PUT, "/join", body: JoinRequest(token: token, pid: pid))
            print(reply)
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait until containers stop, then print their exit codes.")
    @OptionGroup var options: UserOptions
    @Argument(help: "Container names, ids or unique id prefixes.") var containers: [String]

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            for container in containers {
                let result: RunResult = try await client.streamed(.GET, "/wait", query: ["token": token, "container_id": container],
                                                                  onFrame: writeOut)
                print(result.exitCode)
            }
        }
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a stopped container.")
    @OptionGroup var options: UserOptions
    @Argument(help: "Container name, id or unique id prefix.") var container: String

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            let id: String = try await client.call(.PUT, "/start", body: ContainerRequest(token: token, containerID: container))
            print(id)
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the job (limits, use so far, containers) and the Docker engine.")
    @OptionGroup var options: UserOptions
    @Option(help: "'json' for the whole summary as JSON.") var format: String?

    func run() async {
        await guarded {
            if let format, format != "json" { throw BDockerError.invalidInput("--format takes 'json', not '\(format)'") }
            let (client, token) = try options.resolve()
            let summary: JobSummary = try await client.call(.GET, "/info", query: ["token": token])
            if format == "json" {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print(InfoText.render(summary), terminator: "")
            }
        }
    }
}

/// `info` as text, in docker info's shape: a Job section, then the Server (engine) section.
enum InfoText {
    static func render(_ s: JobSummary) -> String {
        func bytes(_ n: Double) -> String {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"]
            var value = n, unit = 0
            while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
            return unit == 0 ? "\(Int(value)) B" : String(format: "%.1f %@", value, units[unit])
        }
        var lines = ["Job: \(s.job)",
                     " User: \(s.user) (uid \(s.uid))",
                     " Home: \(s.home)"]
        if let queue = s.queue { lines.append(" Queue: \(queue)" + (s.host.map { "@\($0)" } ?? "")) }
        lines.append(" Containers: \(s.containers) (running \(s.running), stopped \(s.containers - s.running))")
        lines.append(" Limits:")
        lines.append("  CPU: " + (s.limits.cpuSeconds.map { String(format: "%.0f s", $0) } ?? "none"))
        lines.append("  Memory: " + (s.limits.memoryBytes.map { bytes(Double($0)) } ?? "none"))
        lines.append("  Containers: \(s.limits.maxContainers)")
        if let pids = s.limits.pidsPerContainer { lines.append("  Processes per container: \(pids)") }
        lines.append(" Used so far (as the accounting record counts it):")
        lines.append(String(format: "  CPU: %.1f s", s.usage.cpuSeconds))
        lines.append("  Memory peak: \(bytes(s.usage.maxMemoryBytes))")
        lines.append(String(format: "  Memory integral: %.4f GB·s", s.usage.memGBSeconds))
        let last = s.usage.lastSampleAt.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? "none yet"
        lines.append("  Samples: \(s.usage.samples) (last \(last))")
        lines.append("Server:")
        lines.append(" Engine version: \(s.engine.version)")
        lines.append(" API version: \(s.engine.apiVersion)")
        if let driver = s.engine.storageDriver { lines.append(" Storage driver: \(driver)") }
        if let os = s.engine.operatingSystem { lines.append(" Operating system: \(os)") }
        if let kernel = s.engine.kernel { lines.append(" Kernel version: \(kernel)") }
        return lines.map { $0 + "\n" }.joined()
    }
}

struct Cp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy files between a container and your HOME.",
        discussion: "bdocker cp CONTAINER:SRC HOSTDEST, or bdocker cp HOSTSRC CONTAINER:DEST.")
    @OptionGroup var options: UserOptions
    @Argument(help: "Source.") var source: String
    @Argument(help: "Destination.") var destination: String

    func run() async {
        await guarded {
            let (client, token) = try options.resolve()
            func split(_ s: String) -> (String, String)? {
                guard !s.hasPrefix("/"), !s.hasPrefix("."), let colon = s.firstIndex(of: ":") else { return nil }
                return (String(s[..<colon]), String(s[s.index(after: colon)...]))
            }
            func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p }
            let request: CopyRequest
            switch (split(source), split(destination)) {
            case (let (container, path)?, nil):
                request = CopyRequest(token: token, containerID: container, containerPath: path, hostPath: absolute(destination), hostToContainer: false)
            case (nil, let (container, path)?):
                request = CopyRequest(token: token, containerID: container, containerPath: path, hostPath: absolute(source), hostToContainer: true)
            default:
                throw BDockerError.invalidInput("exactly one of SRC and DEST must be CONTAINER:PATH")
            }
            let message: String = try await client.call(.PUT, "/copy", body: request)
            print(message)
        }
    }
}

/// Any JSON reply, kept as pretty-printed text (inspect, info).
struct JSONText: Codable, Sendable {
    let text: String

    init(from decoder: any Decoder) throws {
        try self.init(try JSONValue(from: decoder))
    }

    init(_ value: JSONValue) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// `docker ps`'s table.
enum PsTable {
    static func render(_ rows: [ContainerRow], now: Date) -> String {
        let header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        let cells = rows.map { r in
            [String(r.id.prefix(12)), r.image, "\"\(truncate(r.command, 20))\"", ago(r.created, now: now), r.status, r.ports, r.names]
        }
        return TextTable(header: header, rows: cells, gap: 3).render()
    }

    static func truncate(_ s: String, _ n: Int) -> String { s.count > n ? String(s.prefix(n - 1)) + "…" : s }

    static func ago(_ created: Int64, now: Date) -> String {
        // The engine's number is not ours to trust: subtract without trapping on any Int64.
        let (difference, overflow) = Int64(now.timeIntervalSince1970).subtractingReportingOverflow(created)
        let seconds = overflow ? (created < 0 ? Int64.max : 0) : max(0, difference)
        switch seconds {
        case ..<60: return "\(seconds) seconds ago"
        case ..<3600: return "\(seconds / 60) minutes ago"
        case ..<86_400: return "\(seconds / 3600) hours ago"
        default: return "\(seconds / 86_400) days ago"
        }
    }
}
