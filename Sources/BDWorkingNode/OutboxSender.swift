import BDAccounting
import BDClient
import BDConfig
import BDCore
import BDMetrics
import BDStore
import Foundation
import GRDB
import Logging

/// Delivers the outbox's accounting records to `[batch] accounting_endpoint`. A record is
/// marked delivered only after the accounting daemon acknowledged it; while that daemon is
/// down or answers 5xx the record waits with exponential backoff (1 s doubling to 5 min),
/// across restarts since the state is in SQLite. An answer that says the record itself was refused
/// (`BDockerError.isPermanent`: a 4xx) marks it rejected, logged and kept for inspection rather
/// than retried forever.
public struct OutboxSender: Sendable {
    let pool: DatabasePool
    let client: DaemonClient?
    let adminToken: String
    let logger: Logger
    let metrics: NodeMetrics
    /// Wakes the loop early (clean just queued a record).
    let doorbell = Doorbell()

    public init(pool: DatabasePool, endpoint: String?, adminToken: String, timeoutSeconds: Int, logger: Logger,
                metrics: NodeMetrics = .disabled) {
        self.init(pool: pool, client: endpoint.map { DaemonClient(endpoint: $0, timeoutSeconds: timeoutSeconds) },
                  adminToken: adminToken, logger: logger, metrics: metrics)
    }

    /// Sending to `[batch] accounting_endpoint` as the settings say, over TLS when it is https.
    public init(pool: DatabasePool, settings: Settings, adminToken: String, logger: Logger,
                metrics: NodeMetrics = .disabled) throws(ConfigError) {
        self.init(pool: pool, client: try Self.accountingClient(settings), adminToken: adminToken, logger: logger, metrics: metrics)
    }

    init(pool: DatabasePool, client: DaemonClient?, adminToken: String, logger: Logger, metrics: NodeMetrics) {
        self.pool = pool
        self.metrics = metrics
        self.client = client
        self.adminToken = adminToken
        self.logger = logger
    }

    /// The client of `[batch] accounting_endpoint` (nil when unset). For https, one that
    /// verifies the daemon's certificate against `accounting_ca` (else the system's trust
    /// store) and presents `accounting_client_certificate` when set; a file that cannot be used
    /// is an error naming its key, found before the node starts (and by `--check-config`).
    public static func accountingClient(_ settings: Settings) throws(ConfigError) -> DaemonClient? {
        let batch = settings.batch
        guard let endpoint = batch.accountingEndpoint else { return nil }
        guard endpoint.hasPrefix("https://") else { return DaemonClient(endpoint: endpoint, timeoutSeconds: settings.server.timeout) }
        let tls = ClientTLS(caFile: batch.accountingCA, certificateFile: batch.accountingClientCertificate,
                            keyFile: batch.accountingClientKey)
        do {
            return DaemonClient(endpoint: endpoint, timeoutSeconds: settings.server.timeout, http: try .failingFast(tls: tls))
        } catch {
            let key = switch error.file {
            case .ca: "accounting_ca"
            case .certificate: "accounting_client_certificate"
            case .key: "accounting_client_key"
            }
            throw settings.error("batch", key, error.message)
        }
    }

    public func kick() { doorbell.ring() }

    /// True while the loop sleeps between passes (waiting for the next due record or a kick).
    public var isAsleep: Bool { doorbell.hasWaiter }

    /// Delivers until cancelled: whatever is due, then sleeps until the next record is due or
    /// somebody kicks.
    public func run() async {
        guard client != nil else {
            logger.warning("[batch] accounting_endpoint is not set: accounting records stay in the outbox")
            return
        }
        while !Task.isCancelled {
            let wait: Double
            do {
                wait = try await deliverDue()
            } catch {
                // The outbox is in SQLite: a failed pass loses nothing; say why and try again soon.
                logger.error("accounting outbox: delivery pass failed, retrying in 5 s: \(error)")
                wait = 5
            }
            await doorbell.wait(upTo: .seconds(wait))
        }
    }

    public struct Summary: Codable, Sendable, Equatable {
        public var delivered: Int
        public var pending: Int
        public var rejected: Int
    }

    /// Tries every due record once; returns seconds until the next one is due (at most 30).
    @discardableResult
    public func deliverDue(now: Double = Date().timeIntervalSince1970) async throws -> Double {
        guard let client else { return 30 }
        let due = try await pool.read { db in
            try OutboxRecord.due(now: now).limit(500).fetchAll(db)
        }
        // Several due records go as one batch (one request, one sync on the daemon); one goes
        // alone, in the original API's form.
        let outcomes: [Result<AccountingReceipt, BDockerError>]
        if due.count > 1 {
            outcomes = await sendBatch(due.map(\.line), client: client)
        } else {
            outcomes = await sendEach(due.map(\.line), client: client)
        }
        let triedAt = Date().timeIntervalSince1970
        try await pool.write { db in
            for (record, outcome) in zip(due, outcomes) {
                var r = record
                r.attempts += 1
                switch outcome {
                case .success:
                    r.state = .delivered
                    r.deliveredAt = triedAt
                    r.lastError = nil
                case .failure(let error) where error.isPermanent:
                    r.state = .rejected
                    r.lastError = error.message
                case .failure(let error):
                    r.nextTryAt = triedAt + Self.backoff(attempts: r.attempts)
                    r.lastError = error.message
                }
                try r.update(db)
            }
        }
        var delivered = 0, rejected = 0, retried = 0
        for outcome in outcomes {
            switch outcome {
            case .success: delivered += 1
            case .failure(let error) where error.isPermanent: rejected += 1
            case .failure: retried += 1
            }
        }
        if delivered > 0 { metrics.delivery(.delivered, count: delivered) }
        if rejected > 0 { metrics.delivery(.rejected, count: rejected) }
        if retried > 0 { metrics.delivery(.retry, count: retried) }
        for (record, outcome) in zip(due, outcomes) {
            // Named as the batch system names the job ("job 9101.1 on node1 started at ..."),
            // not by the outbox's own row numbers.
            // Parsed only when a line is actually logged (the log message is an autoclosure).
            func job() -> String { (try? SGEAccountingRecord.parse(record.line).key.description) ?? "outbox record \(record.id ?? 0)" }
            switch outcome {
            // Per record: DEBUG (a busy node delivers many).
            case .success: logger.debug("accounting record of \(job()) delivered")
            case .failure(let error) where error.isPermanent:
                logger.error("accounting record of \(job()) rejected by the accounting daemon, kept in the outbox: \(error.message)")
            case .failure(let error):
                logger.warning("accounting record of \(job()) not delivered (attempt \(record.attempts + 1)), will retry: \(error.message)")
            }
        }
        let next = try await pool.read { db in
            try OutboxRecord.inState(.pending).select(min(OutboxRecord.Columns.nextTryAt), as: Double.self).fetchOne(db)
        }
        return min(30, max(0.05, (next ?? now + 30) - Date().timeIntervalSince1970))
    }

    /// One `PUT /set_accounting_batch`; its items are the records' outcomes. A failure of the
    /// request as a whole is every record's outcome (a retry, or a refusal for all). An
    /// accounting daemon too old to know the batch form (404) gets the records one by one.
    func sendBatch(_ lines: [String], client: DaemonClient) async -> [Result<AccountingReceipt, BDockerError>] {
        do throws(BDockerError) {
            let receipt: AccountingBatchReceipt = try await client.call(
                .PUT, "/set_accounting_batch", body: AccountingBatchRequest(adminToken: adminToken, lines: lines))
            guard receipt.items.count == lines.count else {
                let error = BDockerError.unavailable("the accounting daemon answered \(receipt.items.count) results for \(lines.count) lines")
                return Array(repeating: .failure(error), count: lines.count)
            }
            return receipt.items.map(\.result)
        } catch where error.httpStatus == 404 {
            return await sendEach(lines, client: client)
        } catch {
            return Array(repeating: .failure(error), count: lines.count)
        }
    }

    /// One `PUT /set_accounting` per line, the original API's form, one at a time.
    func sendEach(_ lines: [String], client: DaemonClient) async -> [Result<AccountingReceipt, BDockerError>] {
        var outcomes: [Result<AccountingReceipt, BDockerError>] = []
        for line in lines {
            outcomes.append(await Result { () async throws(BDockerError) -> AccountingReceipt in
                try await client.call(.PUT, "/set_accounting", body: SetAccountingRequest(adminToken: adminToken, accounting: line))
            })
        }
        return outcomes
    }

    public func summary() async throws -> Summary {
        try await pool.read { db in
            func count(_ state: OutboxRecord.State) throws -> Int {
                try OutboxRecord.inState(state).fetchCount(db)
            }
            return Summary(delivered: try count(.delivered), pending: try count(.pending), rejected: try count(.rejected))
        }
    }

    static func backoff(attempts: Int) -> Double {
        min(300, pow(2, Double(max(0, attempts - 1))))
    }
}

/// Wakes one waiter: `ring` ends the current `wait` at once, or the next one if nobody waits
/// (rings in between count once). Safe from any thread.
final class Doorbell: @unchecked Sendable {
    // @unchecked: `rung` and `waiter` are only touched under `lock`.
    private let lock = NSLock()
    private var rung = false
    private var waiter: CheckedContinuation<Void, Never>?

    var hasWaiter: Bool {
        lock.lock()
        defer { lock.unlock() }
        return waiter != nil
    }

    func ring() {
        lock.lock()
        let waiting = waiter
        waiter = nil
        if waiting == nil { rung = true }
        lock.unlock()
        waiting?.resume()
    }

    /// Returns after a ring or after `timeout`, whichever is first, or when the task is
    /// cancelled. One waiter at a time (the sender's loop).
    func wait(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForRing() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                lock.lock()
                // Checked under the lock: a cancel handler that ran before this saw no waiter.
                if rung || Task.isCancelled {
                    rung = false
                    lock.unlock()
                    continuation.resume()
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let waiting = waiter
            waiter = nil
            lock.unlock()
            waiting?.resume()
        }
    }
}
