import Foundation
import Logging

/// Sets up swift-log for a daemon: stderr always (systemd's journal takes it), and the
/// `[server] logging_file` as well when one is set.
public enum DaemonLogging {
    public static func bootstrap(level: Logger.Level, file: String?) throws(BDockerError) {
        let fileStream: FileLogStream? = if let file { try FileLogStream(path: file) } else { nil }
        LoggingSystem.bootstrap { label in
            var stderrHandler = StreamLogHandler.standardError(label: label)
            stderrHandler.logLevel = level
            guard let fileStream else { return stderrHandler }
            var fileHandler = StreamLogHandler(label: label, stream: fileStream)
            fileHandler.logLevel = level
            return MultiplexLogHandler([stderrHandler, fileHandler])
        }
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
