import BDCore
import Foundation

/// `run -e` and `--env-file`, as docker reads them: files first, then flags (later entries win
/// in the engine); a bare NAME takes its value from the client's environment and is left out
/// when that has none.
enum EnvironmentOptions {
    static func entries(files: [String], flags: [String], clientEnvironment: [String: String]) throws(BDockerError) -> [String] {
        var result: [String] = []
        for file in files {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw .invalidInput("--env-file \(file): cannot read it (\((error as NSError).localizedDescription))")
            }
            for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.hasSuffix("\r") ? String(raw.dropLast()) : String(raw)
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                guard let entry = try entry(trimmed, clientEnvironment, where: "--env-file \(file) line \(number + 1)") else { continue }
                result.append(entry)
            }
        }
        for flag in flags {
            if let entry = try entry(flag, clientEnvironment, where: "-e") { result.append(entry) }
        }
        return result
    }

    private static func entry(_ text: String, _ environment: [String: String], where place: String) throws(BDockerError) -> String? {
        let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
            throw .invalidInput("\(place): '\(text.prefix(80))' is not NAME=value")
        }
        if text.contains("=") { return text }
        return environment[text].map { "\(text)=\($0)" }
    }
}
