/// The one error type that crosses module boundaries. Each case names a class of failure;
/// the API module maps the class to an HTTP status in one place (`BDockerError.httpStatus`),
/// and the client maps it back to an exit code. Messages are meant for the person at the
/// terminal: say what was wrong and, where it helps, what to do.
public enum BDockerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request or its input is malformed or refers to nothing usable (HTTP 400).
    case invalidInput(String)
    /// No token, or a token that is unknown or revoked (HTTP 401).
    case unauthorized(String)
    /// A valid token asking for something it may not do (HTTP 403).
    case forbidden(String)
    /// The thing named does not exist, or is not the caller's (HTTP 404).
    case notFound(String)
    /// The request clashes with the current state (HTTP 409).
    case conflict(String)
    /// A dependency (Docker engine, accounting daemon) is down or refused (HTTP 502/503).
    case unavailable(String)
    /// A real fault in bdocker itself (HTTP 500).
    case internalFault(String)

    public var message: String {
        switch self {
        case .invalidInput(let m), .unauthorized(let m), .forbidden(let m), .notFound(let m),
             .conflict(let m), .unavailable(let m), .internalFault(let m):
            return m
        }
    }

    public var description: String { message }

    /// The HTTP status of each class. Keep this the only such table.
    public var httpStatus: Int {
        switch self {
        case .invalidInput: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .notFound: return 404
        case .conflict: return 409
        case .unavailable: return 503
        case .internalFault: return 500
        }
    }

    /// The inverse of `httpStatus`, used by the client to rebuild a typed error from a reply.
    public static func fromHTTP(status: Int, message: String) -> BDockerError {
        switch status {
        case 400, 422: return .invalidInput(message)
        case 401: return .unauthorized(message)
        case 403: return .forbidden(message)
        case 404: return .notFound(message)
        case 409: return .conflict(message)
        case 502, 503, 504: return .unavailable(message)
        default: return .internalFault(message)
        }
    }
}

extension Result where Failure == BDockerError {
    /// Captures the outcome of a typed-throwing async call.
    public init(catching body: () async throws(BDockerError) -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
