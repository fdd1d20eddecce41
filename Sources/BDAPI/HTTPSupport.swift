import BDCore
import BDCredentials
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat

/// JSON in and out, in the `{"status_code", "results"}` envelope.
enum JSONReply {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static func make<T: Codable & Sendable>(_ results: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: envelope(results, status: status)))
    }

    /// The envelope's bytes, for a whole reply or a stream's final frame.
    static func envelope<T: Codable & Sendable>(_ results: T, status: HTTPResponse.Status = .ok) -> ByteBuffer {
        let envelope = Envelope(statusCode: status.code, results: results)
        if let direct = envelope as? any DirectJSON {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(256)
            direct.writeJSON(to: &bytes)
            return ByteBuffer(bytes: bytes)
        }
        // Encoding our own Codable types cannot fail; fall back to an empty object regardless.
        return ByteBuffer(data: (try? encoder.encode(envelope)) ?? Data("{}".utf8))
    }
}

/// The one place errors become HTTP replies: typed `BDockerError`s by their class
/// (`BDockerError.httpStatus`), Hummingbird's own (unknown route, wrong method) by their status,
/// anything else a logged 500. `ErrorEnvelopeMiddleware` uses it for whole replies and
/// `StreamReply` for a stream's final frame.
enum ErrorReply {
    /// `caller` names who asked in the log line (the uid the kernel gave), so a failure can be
    /// traced to a user even when it came before any token was read.
    static func envelope(for error: any Error, request: Request, logger: Logger,
                         caller: Caller? = nil) -> (status: HTTPResponse.Status, body: ByteBuffer) {
        let (status, message) = reply(for: error, request: request, logger: logger, caller: caller)
        return (status, JSONReply.envelope(message, status: status))
    }

    static func reply(for error: any Error, request: Request, logger: Logger,
                      caller: Caller? = nil) -> (status: HTTPResponse.Status, message: String) {
        let what = "\(request.method) \(request.uri.path)" + (caller.map { " by \($0)" } ?? "")
        switch error {
        case let error as BDockerError:
            if case .internalFault = error {
                // The cause goes to the log (`description`), never to the user (`message`).
                logger.error("\(what): \(error.description)")
            } else {
                logger.info("\(what): \(error.httpStatus) \(error.message)")
            }
            return (HTTPResponse.Status(code: error.httpStatus), error.message)
        case let error as HTTPResponseError:
            let status = error.status
            return (status, status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : status.reasonPhrase)
        default:
            let fault = BDockerError.internalFault("internal error; see the daemon's log", cause: error)
            logger.error("\(what): \(fault.description)")
            return (.internalServerError, fault.message)
        }
    }
}

/// Largest request body accepted; copies go through the Docker archive API, not bodies.
let maxBodyBytes = 1 << 20

extension Request {
    /// Decodes the JSON body into `T`, turning every failure into a 400 that says what is wrong.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type) async throws(BDockerError) -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: maxBodyBytes)
        } catch {
            throw .invalidInput("request body is larger than \(maxBodyBytes) bytes")
        }
        return try Self.decodeJSON(T.self, from: Data(buffer: buffer))
    }

    /// Decodes a request's JSON (a whole body, or a framed body's request frame) into `T`,
    /// turning every failure into a 400 that says what is wrong.
    static func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data) throws(BDockerError) -> T {
        guard !data.isEmpty else { throw .invalidInput("request body is empty; a JSON object is expected") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as BDockerError {
            throw error  // a type that validates while it decodes says itself what is wrong
        } catch let DecodingError.keyNotFound(key, context) {
            throw .invalidInput("field '\(Self.path(context.codingPath + [key]))' is missing")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw .invalidInput("field '\(Self.path(context.codingPath))' should be \(Self.kind(expected))")
        } catch let DecodingError.valueNotFound(expected, context) {
            throw .invalidInput("field '\(Self.path(context.codingPath))' is null; it should be \(Self.kind(expected))")
        } catch {
            throw .invalidInput("request body is not valid JSON")
        }
    }

    /// A query parameter, or nil.
    func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "a whole number"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default: return "an object of the documented shape"
        }
    }
}

/// Turns every error thrown by a route into the JSON envelope with the right status, through
/// `ErrorReply`: the one place errors become HTTP codes.
struct ErrorEnvelopeMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (status, body) = ErrorReply.envelope(for: error, request: request, logger: logger,
                                                     caller: (context as? BDContext)?.caller)
            var headers: HTTPFields = [.contentType: "application/json"]
            if case .tooManyRequests(_, let seconds)? = error as? BDockerError { headers[.retryAfter] = String(max(1, seconds)) }
            return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
        }
    }
}
