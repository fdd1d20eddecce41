import Foundation

/// One entry of `[credentials] bind_roots`: an absolute directory below which job users may
/// bind their own files, besides HOME. Components may hold placeholders filled per job
/// (`/scratch/$USER`, `/tmp/$JOB_ID.$TASK_ID.$QUEUE`). Checked for form when the file is
/// loaded; what is on disk is checked by the bind stager on every use.
public struct BindRoot: Sendable, Equatable, CustomStringConvertible {
    /// What a placeholder may stand for. The values come from passwd and the batch system
    /// (both trusted), never from the job user's request.
    public enum Placeholder: String, Sendable, CaseIterable {
        case user = "USER", uid = "UID", jobID = "JOB_ID", taskID = "TASK_ID", queue = "QUEUE"

        /// Those naming one user or one of their jobs: a root holding one is that user's own.
        var isPersonal: Bool { self == .user || self == .uid || self == .jobID }
    }

    /// A piece of one path component: literal text or a placeholder.
    enum Piece: Sendable, Equatable {
        case text(String)
        case placeholder(Placeholder)
    }

    /// The per-job values of the placeholders; nil where the job has none (no queue known).
    public struct Values: Sendable, Equatable {
        public var user: String
        public var uid: Int
        public var jobID: String
        /// The array task number; 1 for a job that is not an array job, as Grid Engine numbers
        /// it in the job's TMPDIR (`<tmpdir>/<job>.<task>.<queue>`).
        public var taskID: String
        public var queue: String?

        public init(user: String, uid: Int, jobID: String, taskID: String? = nil, queue: String? = nil) {
            self.user = user
            self.uid = uid
            self.jobID = jobID
            self.taskID = taskID ?? "1"
            self.queue = queue
        }

        func value(of placeholder: Placeholder) -> String? {
            switch placeholder {
            case .user: user
            case .uid: String(uid)
            case .jobID: jobID
            case .taskID: taskID
            case .queue: queue
            }
        }
    }

    /// A root filled in for one job.
    public struct Expanded: Sendable, Equatable {
        /// The entry as the admin wrote it, for messages.
        public var template: String
        /// The leading components without placeholders: the admin's own path, which may pass
        /// through root's symlinks.
        public var fixed: [String]
        /// The filled-in components after `fixed`: part of the root, but possibly made by users.
        public var personal: [String]
        /// A root of this user's alone (it names `$USER`, `$UID` or `$JOB_ID`): the root itself
        /// may be bound. A shared root (`/scratch`) only lends its entries of the user's.
        public var isPersonal: Bool

        public var components: [String] { fixed + personal }
        public var path: String { "/" + components.joined(separator: "/") }
    }

    /// The entry as written in the file.
    public let template: String
    let pieces: [[Piece]]

    public var description: String { template }

    /// Whether the root names the user or one of their jobs.
    public var isPersonal: Bool {
        pieces.joined().contains { if case .placeholder(let p) = $0 { p.isPersonal } else { false } }
    }

    /// Parses one entry; the error says what is wrong with it in words for the admin.
    public init(parsing text: String) throws(Invalid) {
        guard text.hasPrefix("/") else { throw Invalid("'\(text)' must be an absolute path") }
        guard !text.contains("\0") else { throw Invalid("'\(text)' may not contain NUL") }
        var pieces: [[Piece]] = []
        for component in text.split(separator: "/").map(String.init) where component != "." {
            // `..` would let a filled-in root climb out of the admin's directory.
            guard component != ".." else { throw Invalid("'\(text)' may not contain '..'") }
            pieces.append(try Self.pieces(of: component, in: text))
        }
        guard !pieces.isEmpty else {
            throw Invalid("'\(text)' would let users bind their files anywhere; name the directories meant for them")
        }
        self.template = text
        self.pieces = pieces
    }

    /// `$NAME` and `${NAME}` with a known name; any other `$` is an error, so a typo cannot
    /// silently become a literal directory name.
    static func pieces(of component: String, in text: String) throws(Invalid) -> [Piece] {
        var result: [Piece] = []
        var literal = ""
        var rest = Substring(component)
        while let dollar = rest.firstIndex(of: "$") {
            literal += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            let name: Substring
            if rest.first == "{" {
                guard let close = rest.firstIndex(of: "}") else { throw Invalid("'\(text)': '${' without '}'") }
                name = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
            } else {
                name = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                rest = rest[name.endIndex...]
            }
            guard let placeholder = Placeholder(rawValue: String(name)) else {
                let hint = name == "HOME" ? " (HOME is always allowed: leave it out)" : ""
                throw Invalid("'\(text)': '$\(name)' is not a placeholder\(hint); use "
                              + Placeholder.allCases.map { "$" + $0.rawValue }.joined(separator: ", "))
            }
            if !literal.isEmpty { result.append(.text(literal)) }
            literal = ""
            result.append(.placeholder(placeholder))
        }
        literal += rest
        if !literal.isEmpty { result.append(.text(literal)) }
        return result
    }

    /// The root for one job, or nil when a placeholder has no usable value for it (no queue
    /// known; a value that is not a single path component).
    public func expand(_ values: Values) -> Expanded? {
        var fixed: [String] = [], personal: [String] = []
        for component in pieces {
            var text = ""
            var filled = false
            for piece in component {
                switch piece {
                case .text(let t): text += t
                case .placeholder(let p):
                    guard let value = values.value(of: p), !value.isEmpty, !value.contains("/"), !value.contains("\0") else { return nil }
                    text += value
                    filled = true
                }
            }
            guard text != ".", text != ".." else { return nil }
            if filled || !personal.isEmpty { personal.append(text) } else { fixed.append(text) }
        }
        return Expanded(template: template, fixed: fixed, personal: personal, isPersonal: isPersonal)
    }

    /// The fixed leading part of the root, as written: what `--check-config` can check without a job.
    public var fixedPath: String {
        var fixed: [String] = []
        for component in pieces {
            guard component.count == 1, case .text(let t) = component[0] else { break }
            fixed.append(t)
        }
        return "/" + fixed.joined(separator: "/")
    }

    /// The entries of a `bind_roots` value: separated by commas or white space.
    public static func parseList(_ text: String) throws(Invalid) -> [BindRoot] {
        var roots: [BindRoot] = []
        for entry in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            let root = try BindRoot(parsing: String(entry))
            if !roots.contains(root) { roots.append(root) }
        }
        guard !roots.isEmpty else { throw Invalid("no directory given; leave the key out to allow HOME only") }
        return roots
    }

    public static func == (a: BindRoot, b: BindRoot) -> Bool { a.pieces == b.pieces }

    /// Why an entry is refused.
    public struct Invalid: Error, Sendable, Equatable {
        public var problem: String
        init(_ problem: String) { self.problem = problem }
    }
}
