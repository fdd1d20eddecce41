/// Bodies of the container commands. GET calls carry the same fields as query parameters.

public struct PullRequest: Codable, Sendable {
    public var token: String
    public var source: String
    public init(token: String, source: String) { self.token = token; self.source = source }
}

/// `PUT /run`. `script` is the container's command as argv (empty: the image's CMD). The
/// fields after `volumes` came later: a body without them means what it did before.
public struct RunRequest: Codable, Sendable {
    public var token: String
    public var imageID: String
    public var script: [String]
    public var detach: Bool
    public var workingDir: String?
    /// "HOST:CONTAINER[:ro|:rw]"; HOST must be inside the user's HOME.
    public var volumes: [String]
    /// "NAME=value" entries (the client resolves a bare NAME from its own environment).
    public var env: [String]
    /// The container's name; nil lets the engine pick one.
    public var name: String?
    /// Replaces the image's ENTRYPOINT; "" clears it, nil keeps it.
    public var entrypoint: String?
    /// Remove the container when it exits (`--rm`).
    public var autoRemove: Bool
    /// Keep the container's stdin open (`-i`). Attached, the stdin frames of a framed request
    /// body feed it and the body's end closes it; detached, it stays open with nobody writing.
    public var interactive: Bool
    /// Give the container a terminal (`-t`): its output is then one raw stream, sent as stdout.
    public var tty: Bool

    public init(token: String, imageID: String, script: [String], detach: Bool, workingDir: String?, volumes: [String],
                env: [String] = [], name: String? = nil, entrypoint: String? = nil, autoRemove: Bool = false,
                interactive: Bool = false, tty: Bool = false) {
        self.token = token
        self.imageID = imageID
        self.script = script
        self.detach = detach
        self.workingDir = workingDir
        self.volumes = volumes
        self.env = env
        self.name = name
        self.entrypoint = entrypoint
        self.autoRemove = autoRemove
        self.interactive = interactive
        self.tty = tty
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        token = try c.decode(String.self, forKey: .token)
        imageID = try c.decode(String.self, forKey: .imageID)
        script = try c.decode([String].self, forKey: .script)
        detach = try c.decode(Bool.self, forKey: .detach)
        workingDir = try c.decodeIfPresent(String.self, forKey: .workingDir)
        volumes = try c.decodeIfPresent([String].self, forKey: .volumes) ?? []
        env = try c.decodeIfPresent([String].self, forKey: .env) ?? []
        name = try c.decodeIfPresent(String.self, forKey: .name)
        entrypoint = try c.decodeIfPresent(String.self, forKey: .entrypoint)
        autoRemove = try c.decodeIfPresent(Bool.self, forKey: .autoRemove) ?? false
        interactive = try c.decodeIfPresent(Bool.self, forKey: .interactive) ?? false
        tty = try c.decodeIfPresent(Bool.self, forKey: .tty) ?? false
    }

    enum CodingKeys: String, CodingKey {
        case token, script, detach, volumes, env, name, entrypoint, interactive, tty
        case imageID = "image_id"
        case workingDir = "working_dir"
        case autoRemove = "auto_remove"
    }
}

/// A terminal's size in character cells, as a resize frame of an attached run carries it.
public struct TerminalSize: Codable, Sendable, Equatable {
    public var height: Int
    public var width: Int
    public init(height: Int, width: Int) { self.height = height; self.width = width }
}

/// `PUT /stop`, `PUT /start`. `timeoutSeconds` is stop's grace period before SIGKILL.
public struct ContainerRequest: Codable, Sendable {
    public var token: String
    public var containerID: String
    public var timeoutSeconds: Int?
    public init(token: String, containerID: String, timeoutSeconds: Int? = nil) {
        self.token = token
        self.containerID = containerID
        self.timeoutSeconds = timeoutSeconds
    }
    enum CodingKeys: String, CodingKey {
        case token
        case containerID = "container_id"
        case timeoutSeconds = "timeout_seconds"
    }
}

/// `GET /logs` options, and what the engine is asked for: all output or the last `tail` lines, each line prefixed with its
/// RFC 3339 time with `timestamps`, going on while the container runs with `follow`.
public struct LogOptions: Sendable {
    public var follow: Bool
    public var tail: Int?
    public var timestamps: Bool
    public init(follow: Bool = false, tail: Int? = nil, timestamps: Bool = false) {
        self.follow = follow
        self.tail = tail
        self.timestamps = timestamps
    }

    /// From query parameters: "1"/"true" flags, and `tail` a count or "all".
    public static func fromQuery(follow: String?, tail: String?, timestamps: String?) throws(BDockerError) -> LogOptions {
        func flag(_ v: String?) -> Bool { ["1", "true", "yes"].contains(v ?? "") }
        var lines: Int?
        if let tail, tail != "all" {
            guard let n = Int(tail), n >= 0 else { throw .invalidInput("tail must be a number of lines or 'all', not '\(tail.prefix(40))'") }
            lines = n
        }
        return LogOptions(follow: flag(follow), tail: lines, timestamps: flag(timestamps))
    }
}

/// `PUT /kill`: `signal` is a name (KILL, SIGTERM) or a number.
public struct KillRequest: Codable, Sendable {
    public var token: String
    public var containerID: String
    public var signal: String
    public init(token: String, containerID: String, signal: String) {
        self.token = token
        self.containerID = containerID
        self.signal = signal
    }
    enum CodingKeys: String, CodingKey {
        case token, signal
        case containerID = "container_id"
    }

    /// The signal as the engine takes it ("TERM", "9"), or an error naming the accepted forms.
    public static func normalized(_ signal: String) throws(BDockerError) -> String {
        let upper = signal.uppercased()
        let name = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        if let number = Int(name), (1...64).contains(number) { return name }
        guard signalNames.contains(name) else {
            throw .invalidInput("unknown signal '\(signal.prefix(20))': give a name such as TERM, INT, KILL, HUP, USR1 or a number 1-64")
        }
        return name
    }

    static let signalNames: Set<String> = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
        "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
        "WINCH", "IO", "PWR", "SYS",
    ]
}

/// `PUT /exec`: a command in a running container of the job, as the job's user.
public struct ExecRequest: Codable, Sendable {
    public var token: String
    public var containerID: String
    public var script: [String]
    public var env: [String]
    public var workingDir: String?
    public init(token: String, containerID: String, script: [String], env: [String] = [], workingDir: String? = nil) {
        self.token = token
        self.containerID = containerID
        self.script = script
        self.env = env
        self.workingDir = workingDir
    }
    enum CodingKeys: String, CodingKey {
        case token, script, env
        case containerID = "container_id"
        case workingDir = "working_dir"
    }
}

/// One row of `GET /images`: an image the job pulled, as the engine has it now.
public struct ImageRow: Codable, Sendable, Equatable {
    public var reference: String
    /// The engine's image id; empty when the engine no longer has the image.
    public var id: String
    public var created: String
    public var size: Int64
    public init(reference: String, id: String, created: String, size: Int64) {
        self.reference = reference
        self.id = id
        self.created = created
        self.size = size
    }
}

/// `PUT /rmi`.
public struct RemoveImageRequest: Codable, Sendable {
    public var token: String
    public var images: [String]
    public var force: Bool
    public init(token: String, images: [String], force: Bool) {
        self.token = token
        self.images = images
        self.force = force
    }
}

/// `PUT /rm`.
public struct RemoveRequest: Codable, Sendable {
    public var token: String
    public var containerID: [String]
    public var force: Bool
    public init(token: String, containerID: [String], force: Bool) {
        self.token = token
        self.containerID = containerID
        self.force = force
    }
    enum CodingKeys: String, CodingKey {
        case token, force
        case containerID = "container_id"
    }
}

/// One id's outcome of `rm`.
public struct RemoveResult: Codable, Sendable, Equatable {
    public var container: String
    public var removed: Bool
    public var error: String?
    public init(container: String, removed: Bool, error: String?) {
        self.container = container
        self.removed = removed
        self.error = error
    }
}

/// `PUT /copy`.
public struct CopyRequest: Codable, Sendable {
    public var token: String
    public var containerID: String
    public var containerPath: String
    public var hostPath: String
    public var hostToContainer: Bool

    public init(token: String, containerID: String, containerPath: String, hostPath: String, hostToContainer: Bool) {
        self.token = token
        self.containerID = containerID
        self.containerPath = containerPath
        self.hostPath = hostPath
        self.hostToContainer = hostToContainer
    }

    enum CodingKeys: String, CodingKey {
        case token
        case containerID = "container_id"
        case containerPath = "container_path"
        case hostPath = "host_path"
        case hostToContainer = "host_to_container"
    }
}

/// A row of `ps`, with docker's columns.
public struct ContainerRow: Codable, Sendable, Equatable {
    public var id: String
    public var image: String
    public var command: String
    public var created: Int64
    public var status: String
    public var ports: String
    public var names: String

    public init(id: String, image: String, command: String, created: Int64, status: String, ports: String, names: String) {
        self.id = id
        self.image = image
        self.command = command
        self.created = created
        self.status = status
        self.ports = ports
        self.names = names
    }
}

/// The end of an attached `run`.
public struct RunResult: Codable, Sendable, Equatable {
    public var id: String
    public var exitCode: Int
    public init(id: String, exitCode: Int) { self.id = id; self.exitCode = exitCode }
    enum CodingKeys: String, CodingKey {
        case id
        case exitCode = "exit_code"
    }
}

/// `GET /info`: the job as bdocker sees it, and the engine's header, as docker info's first lines.
public struct JobSummary: Codable, Sendable, Equatable {
    public struct Limits: Codable, Sendable, Equatable {
        /// The batch system's CPU limit (h_cpu), seconds; nil when none.
        public var cpuSeconds: Double?
        /// The memory limit (h_vmem), bytes; nil when none.
        public var memoryBytes: Int64?
        public var maxContainers: Int
        public var pidsPerContainer: Int?
        public init(cpuSeconds: Double?, memoryBytes: Int64?, maxContainers: Int, pidsPerContainer: Int?) {
            self.cpuSeconds = cpuSeconds
            self.memoryBytes = memoryBytes
            self.maxContainers = maxContainers
            self.pidsPerContainer = pidsPerContainer
        }
        enum CodingKeys: String, CodingKey {
            case cpuSeconds = "cpu_seconds", memoryBytes = "memory_bytes", maxContainers = "max_containers"
            case pidsPerContainer = "pids_per_container"
        }
    }

    /// Use so far, counted as the job's accounting record will count it.
    public struct Usage: Codable, Sendable, Equatable {
        public var cpuSeconds: Double
        /// Memory integral, GB·s (qacct's `mem`).
        public var memGBSeconds: Double
        public var maxMemoryBytes: Double
        public var samples: Int
        public var lastSampleAt: Double?
        public init(cpuSeconds: Double, memGBSeconds: Double, maxMemoryBytes: Double, samples: Int, lastSampleAt: Double?) {
            self.cpuSeconds = cpuSeconds
            self.memGBSeconds = memGBSeconds
            self.maxMemoryBytes = maxMemoryBytes
            self.samples = samples
            self.lastSampleAt = lastSampleAt
        }
        enum CodingKeys: String, CodingKey {
            case cpuSeconds = "cpu_seconds", memGBSeconds = "mem_gb_seconds", maxMemoryBytes = "max_memory_bytes"
            case samples, lastSampleAt = "last_sample_at"
        }
    }

    public struct Engine: Codable, Sendable, Equatable {
        public var version: String
        public var apiVersion: String
        public var operatingSystem: String?
        public var kernel: String?
        public var storageDriver: String?
        public init(version: String, apiVersion: String, operatingSystem: String?, kernel: String?, storageDriver: String?) {
            self.version = version
            self.apiVersion = apiVersion
            self.operatingSystem = operatingSystem
            self.kernel = kernel
            self.storageDriver = storageDriver
        }
        enum CodingKeys: String, CodingKey {
            case version, apiVersion = "api_version", operatingSystem = "operating_system", kernel
            case storageDriver = "storage_driver"
        }
    }

    public var job: String
    public var user: String
    public var uid: Int
    public var home: String
    public var queue: String?
    public var host: String?
    public var limits: Limits
    public var usage: Usage
    public var containers: Int
    public var running: Int
    public var engine: Engine

    public init(job: String, user: String, uid: Int, home: String, queue: String?, host: String?, limits: Limits,
                usage: Usage, containers: Int, running: Int, engine: Engine) {
        self.job = job
        self.user = user
        self.uid = uid
        self.home = home
        self.queue = queue
        self.host = host
        self.limits = limits
        self.usage = usage
        self.containers = containers
        self.running = running
        self.engine = engine
    }
}
