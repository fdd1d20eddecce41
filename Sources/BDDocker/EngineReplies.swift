/// One row of `GET /containers/json`. Encodes with the engine's field names, so `bdocker ps`
/// shows what `docker ps` users know.
public struct ContainerSummary: Codable, Sendable, Equatable {
    public var id: String
    public var image: String
    public var command: String
    /// Unix time of creation.
    public var created: Int64
    /// Human text such as "Exited (3) 2 seconds ago".
    public var status: String
    /// "created", "running", "exited", …
    public var state: String
    public var ports: [PortBinding]
    /// With the engine's leading "/".
    public var names: [String]
    public var labels: [String: String]

    enum CodingKeys: String, CodingKey {
        case id = "Id", image = "Image", command = "Command", created = "Created", status = "Status"
        case state = "State", ports = "Ports", names = "Names", labels = "Labels"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        image = try c.decode(String.self, forKey: .image)
        command = try c.decodeIfPresent(String.self, forKey: .command) ?? ""
        created = try c.decodeIfPresent(Int64.self, forKey: .created) ?? 0
        status = try c.decodeIfPresent(String.self, forKey: .status) ?? ""
        state = try c.decodeIfPresent(String.self, forKey: .state) ?? ""
        // The engine writes null rather than an empty list or map for some containers.
        ports = try c.decodeIfPresent([PortBinding].self, forKey: .ports) ?? []
        names = try c.decodeIfPresent([String].self, forKey: .names) ?? []
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
    }
}

/// A container port and where, if anywhere, it is published on the host.
public struct PortBinding: Codable, Sendable, Equatable {
    public var ip: String?
    public var privatePort: Int
    public var publicPort: Int?
    /// "tcp", "udp" or "sctp".
    public var type: String

    enum CodingKeys: String, CodingKey {
        case ip = "IP", privatePort = "PrivatePort", publicPort = "PublicPort", type = "Type"
    }
}

/// The parts of `GET /version` bdocker reports or checks.
public struct EngineVersion: Codable, Sendable, Equatable {
    public var version: String
    public var apiVersion: String
    public var minAPIVersion: String?
    public var os: String
    public var arch: String
    public var kernelVersion: String?

    enum CodingKeys: String, CodingKey {
        case version = "Version", apiVersion = "ApiVersion", minAPIVersion = "MinAPIVersion"
        case os = "Os", arch = "Arch", kernelVersion = "KernelVersion"
    }
}

/// `POST /containers/create` reply.
struct CreatedContainer: Decodable {
    var id: String
    var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case id = "Id", warnings = "Warnings"
    }
}

/// `POST /containers/{id}/wait` reply.
struct WaitOutcome: Decodable {
    struct Failure: Decodable {
        var message: String?
        enum CodingKeys: String, CodingKey { case message = "Message" }
    }

    var statusCode: Int
    var error: Failure?

    enum CodingKeys: String, CodingKey {
        case statusCode = "StatusCode", error = "Error"
    }
}

/// The engine's error body.
struct EngineMessage: Decodable {
    var message: String
}
