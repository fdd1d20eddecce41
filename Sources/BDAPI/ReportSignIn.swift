import BDCore
import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdBasicAuth
import HummingbirdBcrypt
import Logging
import NIOCore
import Synchronization

/// Failed sign-ins to the usage report, per client address. After `maxFailures` within
/// `window` the address is refused (429 with `Retry-After`) without a bcrypt round, until its
/// oldest failure leaves the window; a success clears its failures. This bounds both password
/// guessing and the CPU a guesser can make the daemon spend on bcrypt, which shares the cores
/// with the records' ingest.
public final class LoginThrottle: Sendable {
    public struct Policy: Sendable {
        public var maxFailures: Int
        public var window: Duration
        /// Addresses remembered at most; beyond it the one whose latest failure is oldest goes.
        public var maxAddresses: Int

        public init(maxFailures: Int = 5, window: Duration = .seconds(60), maxAddresses: Int = 10_000) {
            self.maxFailures = maxFailures
            self.window = window
            self.maxAddresses = maxAddresses
        }
    }

    public let policy: Policy
    private let failures = Mutex<[String: [ContinuousClock.Instant]]>([:])

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// How long `address` must wait before it may try again; nil when it may try now.
    public func wait(for address: String, now: ContinuousClock.Instant = .now) -> Duration? {
        failures.withLock { table in
            guard let recent = Self.recent(table[address], now: now, window: policy.window), recent.count >= policy.maxFailures else {
                return nil
            }
            return recent[recent.count - policy.maxFailures] + policy.window - now
        }
    }

    /// Counts a failure; true when it is the one that locks the address out.
    @discardableResult
    public func failed(_ address: String, now: ContinuousClock.Instant = .now) -> Bool {
        failures.withLock { table in
            var recent = Self.recent(table[address], now: now, window: policy.window) ?? []
            recent.append(now)
            // Only the last `maxFailures` matter.
            if recent.count > policy.maxFailures { recent.removeFirst(recent.count - policy.maxFailures) }
            table[address] = recent
            if table.count > policy.maxAddresses {
                Self.prune(&table, now: now, window: policy.window, keep: policy.maxAddresses)
            }
            return recent.count == policy.maxFailures
        }
    }

    public func succeeded(_ address: String) {
        _ = failures.withLock { $0.removeValue(forKey: address) }
    }

    private static func recent(_ times: [ContinuousClock.Instant]?, now: ContinuousClock.Instant, window: Duration) -> [ContinuousClock.Instant]? {
        times?.filter { now - $0 < window }
    }

    /// Drops expired entries, then the stalest, down to `keep`. Called once the table is one
    /// over, so the loop usually removes one entry: a linear search, not a sort of the table.
    private static func prune(_ table: inout [String: [ContinuousClock.Instant]], now: ContinuousClock.Instant, window: Duration, keep: Int) {
        table = table.filter { $0.value.contains { now - $0 < window } }
        while table.count > keep, let stalest = table.min(by: { ($0.value.last ?? now) < ($1.value.last ?? now) })?.key {
            table.removeValue(forKey: stalest)
        }
    }
}

/// Bounds how many bcrypt rounds run at once (each takes a core for tens of milliseconds):
/// more sign-ins wait their turn rather than take every core from the ingest.
actor BcryptGate {
    private let limit: Int
    private var running = 0
    private var queue: [CheckedContinuation<Void, Never>] = []

    init(limit: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)) {
        self.limit = limit
    }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        if running >= limit {
            await withCheckedContinuation { queue.append($0) }
        } else {
            running += 1
        }
        defer {
            // The slot passes straight to the next in line, or is freed.
            if queue.isEmpty { running -= 1 } else { queue.removeFirst().resume() }
        }
        return try await body()
    }
}

/// Basic authentication for the report's routes, throttled per client address
/// (`LoginThrottle`). Sets the context's identity on a good name and password; anything else
/// leaves it unset, and `ReportGuard` answers 401.
struct ReportSignIn: RouterMiddleware {
    typealias Context = ReportContext
    let usersFile: ReportUsersFile
    let throttle: LoginThrottle
    let gate: BcryptGate
    let logger: Logger

    func handle(_ request: Request, context: ReportContext, next: (Request, ReportContext) async throws -> Response) async throws -> Response {
        guard let basic = request.headers.basic else { return try await next(request, context) }
        let address = context.clientAddress
        if let wait = throttle.wait(for: address) {
            let seconds = Int(wait.components.seconds) + 1
            throw BDockerError.tooManyRequests("too many failed sign-ins from \(address); try again in \(seconds) s", retryAfterSeconds: seconds)
        }
        // An unknown name is checked against the decoy hash: same time, same answer.
        let users = usersFile.users
        let known = users.hashes[basic.username]
        let hash = known ?? users.decoy, password = basic.password
        let good = try await gate.run { try await BcryptPasswordVerifier().verifyPassword(password, createsHash: hash) }
        var context = context
        if good, known != nil {
            throttle.succeeded(address)
            context.identity = ReportUser(name: basic.username)
        } else if throttle.failed(address) {
            let policy = throttle.policy
            logger.warning("usage report: \(policy.maxFailures) failed sign-ins from \(address) (the last as '\(basic.username)'); its attempts are refused for up to \(policy.window)")
        }
        return try await next(request, context)
    }
}
