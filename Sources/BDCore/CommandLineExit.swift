import Foundation

/// How every bdocker command line fails: one line `PROGRAM: message` on stderr, then exit.
/// A `BDockerError` shows its message only (its cause goes to logs, not to users).
public enum CommandLineExit {
    /// The running executable's name (`bdocker`, `bdockerd`, `bdocker-acct`).
    public static var program: String {
        (CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent }).flatMap { $0.isEmpty ? nil : $0 } ?? "bdocker"
    }

    public static func fail(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
        exit(code)
    }

    public static func fail(_ error: any Error, code: Int32 = 1) -> Never {
        fail((error as? BDockerError)?.message ?? String(describing: error), code: code)
    }
}
