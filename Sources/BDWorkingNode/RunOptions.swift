import BDCore

/// Checks of the `run` options a job user sends, before any of them reaches the engine.
enum RunOptions {
    /// Every entry is NAME=value with a non-empty NAME free of '=' and NUL (the engine would
    /// otherwise take or drop it silently).
    static func validate(env: [String], name: String?) throws(BDockerError) {
        guard env.count <= 1000 else { throw .invalidInput("at most 1000 environment variables, not \(env.count)") }
        for entry in env {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw .invalidInput("environment entry '\(entry.prefix(80))' is not NAME=value")
            }
            guard !entry.contains("\0") else { throw .invalidInput("environment entry '\(entry[..<equals])' contains a NUL byte") }
        }
        if let name { try validate(name: name) }
    }

    /// docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+, here at most 128 characters.
    static func validate(name: String) throws(BDockerError) {
        let first = name.unicodeScalars.first
        let valid = name.count >= 2 && name.count <= 128
            && first.map { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) } == true
            && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
        guard valid else {
            throw .invalidInput("invalid container name '\(name.prefix(80))': use 2 to 128 of a-z A-Z 0-9 _ . - starting with a letter or digit")
        }
    }
}
