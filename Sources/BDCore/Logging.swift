import Foundation
import Logging

/// How log lines are written: swift-log's text lines, or one JSON object a line for a log
/// shipper (`[server] log_format`).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Sets up swift-log for a daemon: stderr always (systemd's journal takes it), and the
/// `[server] logging_file` as well when one is set.
public enum DaemonLogging {
    public static func bootstrap(level: Logger.Level, file: String?, format: LogFormat = .text) throws(BDockerError) {
        let fileStream: FileLogStream? = if let file { try FileLogStream(path: file) } else { nil }
        LoggingSystem.bootstrap { label in
            var handlers: [any LogHandler] = []
            switch format {
            case .text:
                handlers.append(StreamLogHandler.standardError(label: label))
                if let fileStream { handlers.append(StreamLogHandler(label: label, stream: fileStream)) }
            case .json:
                handlers.append(JSONLogHandler(label: label, write: { FileHandle.standardError.write(Data($0.utf8)) }))
                if let fileStream { handlers.append(JSONLogHandler(label: label, write: fileStream.write)) }
            }
            for i in handlers.indices { handlers[i].logLevel = level }
            return handlers.count == 1 ? handlers[0] : MultiplexLogHandler(handlers)
        }
    }
}

/// One JSON object a line with the fields of swift-log's text line: `timestamp` (ISO 8601,
/// UTC, milliseconds), `level`, `label`, `message`, `metadata` (when there is any), and
/// `source`, `file`, `line` of the call.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        write(Self.line(timestamp: Date(), level: event.level, label: label, message: event.message.description, metadata: merged,
                        source: event.source, file: event.file, line: event.line))
    }

    /// The line itself (with its newline); separate so a test can check it byte for byte.
    static func line(timestamp: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
                     source: String, file: String, line: UInt) -> String {
        var object: [String: JSONValue] = [
            "timestamp": .string(Self.timestamp(timestamp)),
            "level": .string(level.rawValue),
            "label": .string(label),
            "message": .string(message),
            "source": .string(source),
            "file": .string(file),
            "line": .int(Int64(line)),
        ]
        if !metadata.isEmpty { object["metadata"] = Self.json(.dictionary(metadata)) }
        // Encoding strings and integers cannot fail; a line is never lost for it.
        let data = (try? encoder.encode(JSONValue.object(object))) ?? Data(#"{"message":"unencodable log line"}"#.utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(d.mapValues(json))
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }
}

/// An append-only log file shared by every logger of the process.
public final class FileLogStream: TextOutputStream, @unchecked Sendable {
    // @unchecked: the file handle is only touched under `lock`.
    private let handle: FileHandle
    private let lock = NSLock()

    public init(path: String) throws(BDockerError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else {
            throw .invalidInput("cannot open log file \(path) ([server] logging_file): \(String(cString: strerror(errno)))")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    public func write(_ string: String) {
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data(string.utf8))
    }
}
