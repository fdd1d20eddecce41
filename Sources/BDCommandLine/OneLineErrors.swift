import ArgumentParser
import BDCore
import Foundation

/// Every bdocker command line fails in one line (`PROGRAM: message`), argument errors
/// included: ArgumentParser's own report is three (error, usage, a pointer to --help).
/// `--help` and `--version` print as usual.
extension AsyncParsableCommand {
    /// `main` with `arguments`, and argument errors as one line with exit status 64 (EX_USAGE).
    public static func mainWithOneLineErrors(_ arguments: [String]) async {
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // A usage error (bad or missing argument) is one line; help, version and every
            // other exit keep ArgumentParser's own behaviour.
            if exitCode(for: error) == .validationFailure, !message(for: error).isEmpty {
                CommandLineExit.fail(message(for: error) + " (see --help)", code: 64)
            }
            exit(withError: error)
        }
    }
}
