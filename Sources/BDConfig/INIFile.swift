// tools/fuzz.sh compiles this file on its own, without BDCore (which INIFile does not use).
#if canImport(BDCore)
import BDCore
#endif
import Foundation

/// A parsed INI file in the dialect of Python's configparser, which the original bdocker used:
/// `[section]` headers, `key = value` or `key: value`, whole-line comments starting with `#`
/// or `;`, and indented continuation lines. Keys are case-insensitive (stored lower-cased),
/// section names are case-sensitive (`[dockerAPI]`). Lines end with `\n`, `\r\n` or `\r`, as
/// Python reads text files.
public struct INIFile: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var value: String
        public var line: Int
    }

    public let path: String
    public private(set) var sections: [String: [String: Entry]] = [:]
    /// Section names in file order, for messages and dumps.
    public private(set) var sectionOrder: [String] = []

    public init(path: String, text: String) throws(ConfigError) {
        self.path = path
        var current: String?
        var lastKey: String?
        // "\r\n" is one Character in Swift, so splitting at "\n" alone would keep a CRLF file
        // in one line.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            let line = String(rawLine)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") {
                continue
            }
            // An indented line continues the previous value (configparser semantics).
            if line.first == " " || line.first == "\t", let section = current, let key = lastKey {
                sections[section]![key]!.value += "\n" + trimmed
                continue
            }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else {
                    throw ConfigError(file: path, line: lineNumber, "malformed section header '\(trimmed)'")
                }
                let name = String(trimmed.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else {
                    throw ConfigError(file: path, line: lineNumber, "malformed section header '\(trimmed)' (no name)")
                }
                if sections[name] != nil {
                    throw ConfigError(file: path, section: name, line: lineNumber, "section appears twice")
                }
                sections[name] = [:]
                sectionOrder.append(name)
                current = name
                lastKey = nil
                continue
            }
            guard let section = current else {
                throw ConfigError(file: path, line: lineNumber, "'\(trimmed)' comes before any [section] header")
            }
            guard let sep = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ConfigError(file: path, section: section, line: lineNumber,
                                  "expected 'key = value', found '\(trimmed)'")
            }
            let key = trimmed[..<sep].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: sep)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else {
                throw ConfigError(file: path, section: section, line: lineNumber, "a value without a key")
            }
            if sections[section]![key] != nil {
                throw ConfigError(file: path, section: section, key: key, line: lineNumber, "key appears twice")
            }
            sections[section]![key] = Entry(value: value, line: lineNumber)
            lastKey = key
        }
    }

    /// Reads and parses `path`; a missing or unreadable file is a `ConfigError` naming it.
    public static func load(path: String) throws(ConfigError) -> INIFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                throw ConfigError(file: path, "configuration file not found")
            }
            throw ConfigError(file: path, "cannot read configuration file: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, "configuration file is not UTF-8 text")
        }
        return try INIFile(path: path, text: text)
    }

    public func hasSection(_ name: String) -> Bool { sections[name] != nil }

    public func entry(_ section: String, _ key: String) -> Entry? {
        sections[section]?[key.lowercased()]
    }
}

/// A configuration problem, always naming the file and, where known, the section, key and line.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var section: String?
    public var key: String?
    public var line: Int?
    public var problem: String

    public init(file: String, section: String? = nil, key: String? = nil, line: Int? = nil, _ problem: String) {
        self.file = file
        self.section = section
        self.key = key
        self.line = line
        self.problem = problem
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let section {
            location += ": [\(section)]"
            if let key { location += " \(key)" }
        }
        return "\(location): \(problem)"
    }
}
