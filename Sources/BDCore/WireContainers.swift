/// Bodies of the container commands. GET calls carry the same fields as query parameters.

public struct PullRequest: Codable, Sendable {
    public var token: String
    public var source: String
    public init(token: String, source: String) { self.token = token; self.source = source }
}

/// `PUT /run`. `script` is the container's command as argv (empty: the image's CMD).
public struct RunRequest: Codable, Sendable {
    public var token: String
    public var imageID: String
    public var script: [String]
    public var detach: Bool
    public var workingDir: String?
    /// "HOST:CONTAINER[:ro|:rw]"; HOST must be inside the user's HOME.
    public var volumes: [String]

    public init(token: String, imageID: String, script: [String], detach: Bool, workingDir: String?, volumes: [String]) {
        self.token = token
        self.imageID = imageID
        self.script = script
        self.detach = detach
        self.workingDir = workingDir
        self.volumes = volumes
    }

    enum CodingKeys: String, CodingKey {
        case token, script, detach, volumes
        case imageID = "image_id"
        case workingDir = "working_dir"
    }
}

/// `PUT /stop`, `PUT /start`.
public struct ContainerRequest: Codable, Sendable {
    public var token: String
    public var containerID: String
    public init(token: String, containerID: String) { self.token = token; self.containerID = containerID }
    enum CodingKeys: String, CodingKey {
        case token
        case containerID = "container_id"
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
