/// The one error type that crosses module boundaries. Each case names a class of failure;
/// the API module maps the class to an HTTP status in one place (`BDockerError.httpStatus`),
/// and the client maps it back to an exit code. Messages are meant for the person at the
/// terminal: say what was wrong and, where it helps, what to do.
///
/// An internal fault may carry the error that caused it (`cause`): it goes to the daemon's log
/// (`description`) but never into `message`, which is what users see.
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
    /// Too many attempts from this client for now (HTTP 429); it may try again after
    /// `retryAfterSeconds` (the reply's `Retry-After`).
    case tooManyRequests(String, retryAfterSeconds: Int)
    /// A real fault in bdocker itself (HTTP 500), and the error behind it when there is one.
    case internalFault(String, cause: (any Error)? = nil)

    /// What the user is told: never the cause.
    public var message: String {
        switch self {
        case .invalidInput(let m), .unauthorized(let m), .forbidden(let m), .notFound(let m),
             .conflict(let m), .unavailable(let m), .internalFault(let m, cause: _), .tooManyRequests(let m, _):
            return m
        }
    }

    /// The error this one was made from, for the log.
    public var cause: (any Error)? {
        if case .internalFault(_, let cause) = self { return cause }
        return nil
    }

    /// The message and, for the log, its cause.
    public var description: String {
        guard let cause else { return message }
        return "\(message): \(String(describing: cause))"
    }

    /// Equal when the class and message are: the cause is a detail for the log.
    public static func == (a: BDockerError, b: BDockerError) -> Bool {
        switch (a, b) {
        case (.invalidInput(let x), .invalidInput(let y)), (.unauthorized(let x), .unauthorized(let y)),
             (.forbidden(let x), .forbidden(let y)), (.notFound(let x), .notFound(let y)),
             (.conflict(let x), .conflict(let y)), (.unavailable(let x), .unavailable(let y)),
             (.internalFault(let x, _), .internalFault(let y, _)), (.tooManyRequests(let x, _), .tooManyRequests(let y, _)):
            return x == y
        default:
            return false
        }
    }

    /// Whether trying the same request again cannot succeed: the request itself was refused
    /// (400, 401, 403, 404, 409). Unavailability, throttling and internal faults may pass.
    public var isPermanent: Bool {
        switch self {
        case .invalidInput, .unauthorized, .forbidden, .notFound, .conflict: return true
        case .unavailable, .internalFault, .tooManyRequests: return false
        }
    }

    /// The HTTP status of each class. Keep this the only such table.
    public var httpStatus: Int {
        switch self {
        case .invalidInput: return 400
        case .unauthorized: return 401
        case .forbidden: return 403
        case .notFound: return 404
        case .conflict: return 409
        case .tooManyRequests: return 429
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
        case 429: return .tooManyRequests(message, retryAfterSeconds: 1)
        case 502, 503, 504: return .unavailable(message)
        default: return .internalFault(message)
        }
    }
}

extension BDockerError {
    /// Runs `body`; a `BDockerError` passes through unchanged and any other error becomes
    /// `internalFault(context, cause: error)`, so the user sees the context and the log the cause.
    public static func wrapping<T>(_ context: @autoclosure () -> String,
                                   _ body: () throws -> T) throws(BDockerError) -> T {
        try mapping({ .internalFault(context(), cause: $0) }, body)
    }

    /// `wrapping` for async work.
    public static func wrapping<T>(_ context: @autoclosure () -> String,
                                   isolation: isolated (any Actor)? = #isolation,
                                   _ body: () async throws -> T) async throws(BDockerError) -> T {
        try await mapping({ .internalFault(context(), cause: $0) }, isolation: isolation, body)
    }

    /// Runs `body`; a `BDockerError` passes through unchanged and any other error is turned into
    /// one by `transform` (for failures that are not internal faults, e.g. a lost connection).
    public static func mapping<T>(_ transform: (any Error) -> BDockerError,
                                  _ body: () throws -> T) throws(BDockerError) -> T {
        do {
            return try body()
        } catch let error as BDockerError {
            throw error
        } catch {
            throw transform(error)
        }
    }

    /// `mapping` for async work.
    public static func mapping<T>(_ transform: (any Error) -> BDockerError,
                                  isolation: isolated (any Actor)? = #isolation,
                                  _ body: () async throws -> T) async throws(BDockerError) -> T {
        do {
            return try await body()
        } catch let error as BDockerError {
            throw error
        } catch {
            throw transform(error)
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
