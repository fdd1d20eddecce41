import BDAPI
import BDCore
import Foundation
import Testing

/// The test environment `tools/test-env.sh up` describes in /run/bdocker-test/env, under the
/// process environment (which wins, so one value can be overridden for one run).
public enum TestEnvironment {
    public static let file = "/run/bdocker-test/env"

    public static let values: [String: String] = {
        var values: [String: String] = [:]
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let assignment = line.hasPrefix("export ") ? line.dropFirst("export ".count) : line
            guard let equals = assignment.firstIndex(of: "=") else { continue }
            let value = assignment[assignment.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            values[String(assignment[..<equals])] = value
        }
        return values.merging(ProcessInfo.processInfo.environment) { _, env in env }
    }()

    /// The values as a dictionary, for tests that pass them on to a child process.
    public static func load() -> [String: String] { values }

    /// Set by the README's test command (tools/run-tests.sh): every requirement is promised, so
    /// no test may be skipped; a missing one then fails the test that needs it, by name.
    public static var requireAll: Bool { ProcessInfo.processInfo.environment["BDOCKER_TEST_REQUIRE_ALL"] == "1" }
}

/// Something outside the package an integration test needs. Tests declare theirs with
/// `.requires(...)`; when one is missing the test is skipped with the reason and the fix.
public enum Requirement: String, CaseIterable, Sendable, CustomStringConvertible {
    /// uid 0: cgroups, chown, mounts, setpriv to other users.
    case root
    /// Writable cgroup v1 hierarchies (cpuacct, memory) under /sys/fs/cgroup.
    case cgroupsV1
    /// The non-root users the attack and ownership tests run as (bdtest1, bdtest2).
    case testUsers
    /// The private dockerd of tools/test-env.sh, answering on its socket.
    case dockerEngine
    /// The local registry with the pull test's own tag.
    case registry
    /// Grid Engine's `qacct` (gridengine-client).
    case qacct
    /// Debian's `chromium`, run headless to load the usage report.
    case chromium
    /// The `openssl` command, which makes the TLS tests' CA and certificates (`TestPKI`).
    case openssl

    public var description: String { rawValue }

    /// Checked once per process: the answer cannot change during a run that matters.
    public var isMet: Bool { Self.met[self] ?? false }

    private static let met: [Requirement: Bool] = Dictionary(uniqueKeysWithValues: allCases.map { ($0, $0.check()) })

    /// What is missing, in words a newcomer can act on.
    public var missing: String {
        switch self {
        case .root: "not running as root"
        case .cgroupsV1: "no writable cgroup v1 memory/cpuacct hierarchy under /sys/fs/cgroup"
        case .testUsers: "test users \(Self.testUserNames.joined(separator: ", ")) do not exist"
        case .dockerEngine: "the test Docker engine (BDOCKER_TEST_DOCKER_URL) does not answer"
        case .registry: "the test registry (BDOCKER_TEST_REGISTRY) does not answer or BDOCKER_TEST_PULL_IMAGE/BDOCKER_TEST_RUN_PULL_IMAGE is unset (run tools/test-env.sh up)"
        case .qacct: "\(Qacct.path) (gridengine-client) is not installed"
        case .chromium: "\(Chromium.path) (Debian's chromium) is not installed"
        case .openssl: "\(TestPKI.openssl) (Debian's openssl) is not installed"
        }
    }

    static var testUserNames: [String] {
        (TestEnvironment.values["BDOCKER_TEST_USERS"] ?? "bdtest1 bdtest2").split(separator: " ").map(String.init)
    }

    private func check() -> Bool {
        switch self {
        case .root:
            return getuid() == 0
        case .cgroupsV1:
            return ["memory", "cpuacct"].allSatisfy { access("/sys/fs/cgroup/\($0)/tasks", W_OK) == 0 }
        case .testUsers:
            return Self.testUserNames.allSatisfy { PasswdEntry.lookup(name: $0) != nil }
        case .dockerEngine:
            guard let url = TestEnvironment.values["BDOCKER_TEST_DOCKER_URL"] else { return false }
            let path = url.hasPrefix("unix://") ? String(url.dropFirst("unix://".count)) : url
            return Probe.unixSocketAnswers(path)
        case .registry:
            guard TestEnvironment.values["BDOCKER_TEST_PULL_IMAGE"] != nil, TestEnvironment.values["BDOCKER_TEST_RUN_PULL_IMAGE"] != nil,
                  let registry = TestEnvironment.values["BDOCKER_TEST_REGISTRY"],
                  let colon = registry.lastIndex(of: ":"), let port = UInt16(registry[registry.index(after: colon)...])
            else { return false }
            return Probe.loopbackPortAnswers(port)
        case .qacct:
            return access(Qacct.path, X_OK) == 0
        case .chromium:
            return access(Chromium.path, X_OK) == 0
        case .openssl:
            return access(TestPKI.openssl, X_OK) == 0
        }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only when every requirement is met; otherwise it is skipped, and the skip
    /// says what is missing and how to get it. Under BDOCKER_TEST_REQUIRE_ALL=1 it always runs.
    public static func requires(_ requirements: Requirement..., sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        let missing = requirements.filter { !$0.isMet }
        let comment = Comment(rawValue: missing.isEmpty ? "requirements met"
            : "needs \(missing.map(\.description).joined(separator: ", ")): \(missing.map(\.missing).joined(separator: "; ")); run `sudo tools/test-env.sh up` (or `bash tools/run-tests.sh`)")
        return .enabled(if: TestEnvironment.requireAll || missing.isEmpty, comment, sourceLocation: sourceLocation)
    }
}
