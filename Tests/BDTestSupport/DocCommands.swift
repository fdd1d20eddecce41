import BDCore
import Foundation
import Testing

/// The command lines README.md and docs/*.md show, and the checked list
/// (Tests/Fixtures/doc-commands.txt) that says what the tests do with each: run it against a
/// fixture, or skip it for a reason. docs/testing.md ("Command lines in the docs") tells how.
public enum DocCommands {
    public static let listPath = "Tests/Fixtures/doc-commands.txt"

    /// A command line shown in a code block of a doc.
    public struct DocLine: Sendable {
        public let file: String
        public let line: Int
        public let command: String
    }

    /// One entry of the list.
    public struct Entry: Sendable {
        /// Which fixture runs the line (see the list's header), or none.
        public enum Kind: String, Sendable, CaseIterable {
            case job, root, acct, qacct, skip
        }
        public let file: String
        public let command: String
        public let kind: Kind
        /// Where the entry is in the list, for messages.
        public let listLine: Int
        public var exit: Int32 = 0
        public var prints: [String] = []
        /// What runs instead of the doc's line (a synopsis such as `job [N] [FILTERS]`).
        public var runAs: String?
        public var why: String?

        public var place: String { "\(DocCommands.listPath):\(listLine)" }
    }

    public struct List: Sendable {
        /// Doc text → fixture text, applied in order (whole words) before a line runs.
        public var substitutions: [(from: String, to: String)] = []
        public var entries: [Entry] = []

        /// The shell text that runs for `entry`.
        public func shell(_ entry: Entry) -> String {
            if let runAs = entry.runAs { return runAs }
            return substitutions.reduce(entry.command) { text, sub in
                text.replacingOccurrences(of: "(?<!\\w)" + NSRegularExpression.escapedPattern(for: sub.from) + "(?!\\w)",
                                          with: NSRegularExpression.escapedTemplate(for: sub.to), options: .regularExpression)
            }
        }
    }

    /// The docs the list covers: README.md and every docs/*.md.
    public static func docFiles() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: Repo.path("docs")).filter { $0.hasSuffix(".md") }.sorted()
        return ["README.md"] + docs.map { "docs/" + $0 }
    }

    public static func docLines() throws -> [DocLine] {
        try docFiles().flatMap { file in
            commands(inMarkdown: try String(contentsOfFile: Repo.path(file), encoding: .utf8))
                .map { DocLine(file: file, line: $0.line, command: $0.command) }
        }
    }

    /// Programs whose lines are commands in a code block without `$ ` prompts. Any other line
    /// there is output, configuration or a diagram.
    static let programs: Set<String> = [
        "bdocker", "bdockerd", "bdocker-acct", "bdocker-bench", "bash", "sh", "sudo", "swift", "docker",
        "qacct", "qsub", "qstat", "qmod", "qconf", "curl", "systemctl", "journalctl", "echo", "for",
        "htpasswd", "openssl",
    ]

    /// The command lines of a Markdown text's code blocks (fenced, except ```text, and indented
    /// by four spaces after a blank line), with the number of each one's first line.
    /// In a block with `$ ` prompts the prompted lines are the commands; elsewhere a line whose
    /// first word is one of `programs`, a path under tools/ or .build/, or `NAME=$(`. A line
    /// ending in `\` goes on in the next; a `#` comment after the command is left off. A log
    /// line quoting a program (`bdocker epilog: job 13 ...`) is not a command.
    public static func commands(inMarkdown text: String) -> [(line: Int, command: String)] {
        var result: [(line: Int, command: String)] = []
        for block in codeBlocks(text) {
            let prompted = block.contains { $0.text.hasPrefix("$ ") }
            var index = 0
            while index < block.count {
                let start = block[index].number
                var line = block[index].text
                while line.hasSuffix("\\"), index + 1 < block.count {
                    index += 1
                    line = line.dropLast().trimmingCharacters(in: .whitespaces) + " " + block[index].text
                }
                index += 1
                if prompted {
                    guard line.hasPrefix("$ ") else { continue }
                    line.removeFirst(2)
                }
                let command = withoutComment(line)
                let words = command.split(separator: " ")
                guard let first = words.first.map(String.init) else { continue }
                let isCommand = prompted || programs.contains(first) || first.hasPrefix("tools/") || first.hasPrefix(".build/")
                    || first.range(of: "^[A-Za-z_][A-Za-z0-9_]*=\\$\\(", options: .regularExpression) != nil
                guard isCommand, !(words.count > 1 && words[1].hasSuffix(":")) else { continue }
                result.append((start, command))
            }
        }
        return result
    }

    /// Each code block's non-empty lines, trimmed, with their line numbers.
    static func codeBlocks(_ text: String) -> [[(number: Int, text: String)]] {
        var blocks: [[(number: Int, text: String)]] = []
        var current: [(number: Int, text: String)]?
        var fenced = false, scanned = true, previousBlank = true
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                if fenced {
                    if scanned, let block = current { blocks.append(block) }
                    current = nil
                } else {
                    if let block = current { blocks.append(block) }
                    // ```text marks a diagram or output: nothing in it is run.
                    scanned = trimmed.dropFirst(3) != "text"
                    current = []
                }
                fenced.toggle()
                previousBlank = false
                continue
            }
            let indented = raw.hasPrefix("    ")
            if fenced || indented && (previousBlank || current != nil) {
                if current == nil { current = [] }
                if !trimmed.isEmpty { current?.append((offset + 1, trimmed)) }
            } else if !trimmed.isEmpty, let block = current {
                blocks.append(block)
                current = nil
            }
            previousBlank = trimmed.isEmpty
        }
        if !fenced, let block = current { blocks.append(block) }
        return blocks
    }

    /// `line` without a trailing `# comment` (a `#` after a blank, outside quotes).
    static func withoutComment(_ line: String) -> String {
        var quote: Character?
        var previous: Character = " "
        for index in line.indices {
            let c = line[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "#", previous == " " {
                return line[..<index].trimmingCharacters(in: .whitespaces)
            }
            previous = c
        }
        return line.trimmingCharacters(in: .whitespaces)
    }

    /// Reads the list; a malformed line throws, naming it.
    public static func list(path: String = Repo.path(listPath)) throws -> List {
        var list = List()
        var file: String?
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        for (offset, raw) in lines.enumerated() {
            let number = offset + 1
            func bad(_ why: String) -> BDockerError { .invalidInput("\(listPath):\(number): \(why): \(raw)") }
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || raw.hasPrefix("#") { continue }
            let (word, rest) = split(line)
            if raw.first == " " {
                // A detail of the entry above.
                guard !list.entries.isEmpty, !rest.isEmpty else { throw bad("a detail belongs under an entry") }
                var entry = list.entries.removeLast()
                switch word {
                case "exit": guard let code = Int32(rest) else { throw bad("exit takes a number") }; entry.exit = code
                case "prints": entry.prints.append(rest)
                case "as": entry.runAs = rest
                case "why": entry.why = rest
                default: throw bad("unknown detail '\(word)' (exit, prints, as, why)")
                }
                list.entries.append(entry)
            } else if line.hasPrefix("[") && line.hasSuffix("]") {
                file = String(line.dropFirst().dropLast())
            } else if word == "sub" {
                let parts = rest.components(separatedBy: " => ")
                guard parts.count == 2 else { throw bad("use: sub TEXT => REPLACEMENT") }
                list.substitutions.append((parts[0].trimmingCharacters(in: .whitespaces), parts[1].trimmingCharacters(in: .whitespaces)))
            } else if let kind = Entry.Kind(rawValue: word), let file, !rest.isEmpty {
                list.entries.append(Entry(file: file, command: rest, kind: kind, listLine: number))
            } else {
                throw bad("expected [FILE], sub, or an entry (\(Entry.Kind.allCases.map(\.rawValue).joined(separator: ", ")) COMMAND) under a [FILE]")
            }
        }
        return list
    }

    private static func split(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(of: " ") else { return (line, "") }
        return (String(line[..<space]), line[space...].trimmingCharacters(in: .whitespaces))
    }

    /// The options a line shows (`-o`, `--by`), brackets and alternatives around them or not.
    public static func options(_ command: String) -> Set<String> {
        Set(command.split(whereSeparator: { " [|]".contains($0) }).filter {
            $0.range(of: "^--?[A-Za-z][A-Za-z0-9-]*$", options: .regularExpression) != nil
        }.map(String.init))
    }

    /// What one line did: its exit status (nil when the run ended before it) and its output,
    /// stdout and stderr together.
    public struct Outcome: Sendable {
        public let status: Int32?
        public let output: String
    }

    /// Runs the entries' lines in order in one bash (as `user` when given), so that a line may
    /// use what an earlier one set (`id=$(bdocker run -d ...)`, then `${id:0:6}`); `$?` at the
    /// start of each line is the status of the one before (`echo $?`). `directory` must be
    /// writable by the user: the script and each line's output go there.
    public static func run(_ entries: [Entry], of list: List, environment: [String: String], as user: PasswdEntry? = nil,
                           in directory: String, timeoutSeconds: Int = 300) async throws -> [Outcome] {
        var script = "__rc=0\n"
        for (index, entry) in entries.enumerated() {
            let out = "'\(directory)/\(index).out'", status = "'\(directory)/\(index).status'"
            script += "{ (exit $__rc); \(list.shell(entry))\n} >\(out) 2>&1 </dev/null; __rc=$?; echo $__rc >\(status)\n"
        }
        let scriptPath = directory + "/doc-commands.sh"
        try script.write(toFile: scriptPath, atomically: false, encoding: .utf8)
        var command = ["/bin/bash", scriptPath]
        if let user {
            command = ["/usr/bin/setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"] + command
        }
        _ = try await runCommand("/usr/bin/timeout", ["-k", "5", String(timeoutSeconds)] + command,
                                 environment: environment, directory: directory)
        return entries.indices.map { index in
            let read = { (suffix: String) in (try? String(contentsOfFile: "\(directory)/\(index).\(suffix)", encoding: .utf8)) ?? "" }
            return Outcome(status: Int32(read("status").trimmingCharacters(in: .whitespacesAndNewlines)), output: read("out"))
        }
    }

    /// Records an issue for every line whose status or output is not what its entry says.
    public static func expect(_ entries: [Entry], _ outcomes: [Outcome], of list: List,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        for (entry, outcome) in zip(entries, outcomes) {
            let shell = list.shell(entry)
            let what = "\(entry.file): `\(entry.command)` (\(entry.place)\(shell == entry.command ? "" : ", ran as `\(shell)`"))"
            guard let status = outcome.status else {
                Issue.record("\(what) did not finish: the run was stopped before it", sourceLocation: sourceLocation)
                continue
            }
            #expect(status == entry.exit, "\(what) exited \(status), not \(entry.exit): \(outcome.output)", sourceLocation: sourceLocation)
            for text in entry.prints {
                #expect(outcome.output.contains(text), "\(what) did not print \"\(text)\": \(outcome.output)", sourceLocation: sourceLocation)
            }
        }
    }
}
