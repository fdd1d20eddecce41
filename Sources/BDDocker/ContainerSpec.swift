/// What bdocker asks the engine to create for a user's `run`. Only the knobs bdocker sets are
/// here. Without `tty` the output arrives multiplexed (see `OutputDemultiplexer`); with it, as
/// one raw stream. Without `openStdin` the container's stdin is empty.
public struct ContainerSpec: Sendable, Equatable {
    public var image: String
    /// Replaces the image's CMD; empty keeps it.
    public var cmd: [String]
    /// Replaces the image's ENTRYPOINT; [""] clears it, nil keeps it.
    public var entrypoint: [String]?
    /// The engine removes the container when it exits.
    public var autoRemove: Bool
    /// A container name; nil lets the engine pick one.
    public var name: String?
    public var workingDir: String?
    /// "uid:gid", so the job runs as the batch user and not as root.
    public var user: String?
    /// "NAME=value" entries.
    public var env: [String]
    /// "host:container[:ro]" bind mounts.
    public var binds: [String]
    public var labels: [String: String]
    /// The cgroup to place the container under, e.g. the batch job's, so its usage is accounted there.
    public var cgroupParent: String?
    /// e.g. "no-new-privileges", so setuid binaries in the image cannot regain root.
    public var securityOpt: [String]
    /// e.g. ["ALL"].
    public var capDrop: [String]
    /// nil keeps the engine's default network; "none" isolates the container.
    public var networkMode: String?
    /// Most processes in the container; nil = the engine's default (none).
    public var pidsLimit: Int?
    /// Memory limit in bytes; nil = none.
    public var memoryBytes: Int64?
    /// A terminal for the container (`-t`).
    public var tty: Bool
    /// Keep stdin open (`-i`).
    public var openStdin: Bool
    /// The stdin of an attached run: the engine closes it when the attached client closes
    /// its side, so EOF reaches the container. Off for a detached `-i`, whose stdin stays open.
    public var stdinOnce: Bool

    public init(image: String, cmd: [String] = [], name: String? = nil, workingDir: String? = nil,
                user: String? = nil, env: [String] = [], binds: [String] = [], labels: [String: String] = [:],
                cgroupParent: String? = nil, securityOpt: [String] = [], capDrop: [String] = [],
                networkMode: String? = nil, pidsLimit: Int? = nil, memoryBytes: Int64? = nil,
                entrypoint: [String]? = nil, autoRemove: Bool = false, tty: Bool = false, openStdin: Bool = false,
                stdinOnce: Bool = false) {
        self.tty = tty
        self.openStdin = openStdin
        self.stdinOnce = stdinOnce
        self.entrypoint = entrypoint
        self.autoRemove = autoRemove
        self.pidsLimit = pidsLimit
        self.memoryBytes = memoryBytes
        self.image = image
        self.cmd = cmd
        self.name = name
        self.workingDir = workingDir
        self.user = user
        self.env = env
        self.binds = binds
        self.labels = labels
        self.cgroupParent = cgroupParent
        self.securityOpt = securityOpt
        self.capDrop = capDrop
        self.networkMode = networkMode
    }
}

/// The body of `POST /containers/create`, in the engine's field names.
struct CreateContainerBody: Encodable {
    struct HostConfig: Encodable {
        var binds: [String]
        var cgroupParent: String?
        var securityOpt: [String]
        var capDrop: [String]
        var networkMode: String?
        var pidsLimit: Int?
        var memory: Int64?
        var autoRemove: Bool

        enum CodingKeys: String, CodingKey {
            case binds = "Binds", cgroupParent = "CgroupParent", securityOpt = "SecurityOpt"
            case capDrop = "CapDrop", networkMode = "NetworkMode", pidsLimit = "PidsLimit", memory = "Memory"
            case autoRemove = "AutoRemove"
        }
    }

    var image: String
    var cmd: [String]?
    var entrypoint: [String]?
    var workingDir: String?
    var user: String?
    var env: [String]
    var labels: [String: String]
    var tty = false
    var openStdin = false
    var stdinOnce = false
    var attachStdin = false
    var attachStdout = true
    var attachStderr = true
    var hostConfig: HostConfig

    enum CodingKeys: String, CodingKey {
        case image = "Image", cmd = "Cmd", workingDir = "WorkingDir", user = "User", env = "Env"
        case entrypoint = "Entrypoint"
        case labels = "Labels", tty = "Tty", openStdin = "OpenStdin", stdinOnce = "StdinOnce", attachStdin = "AttachStdin"
        case attachStdout = "AttachStdout", attachStderr = "AttachStderr", hostConfig = "HostConfig"
    }

    init(_ spec: ContainerSpec) {
        image = spec.image
        cmd = spec.cmd.isEmpty ? nil : spec.cmd
        entrypoint = spec.entrypoint
        workingDir = spec.workingDir
        user = spec.user
        env = spec.env
        labels = spec.labels
        tty = spec.tty
        openStdin = spec.openStdin
        stdinOnce = spec.stdinOnce
        attachStdin = spec.stdinOnce
        hostConfig = HostConfig(binds: spec.binds, cgroupParent: spec.cgroupParent, securityOpt: spec.securityOpt,
                                capDrop: spec.capDrop, networkMode: spec.networkMode, pidsLimit: spec.pidsLimit,
                                memory: spec.memoryBytes, autoRemove: spec.autoRemove)
    }
}
