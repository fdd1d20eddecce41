import BDCore
import BDMetrics
import BDStore
import Dispatch
import Logging

/// Takes accounting records from any number of concurrent requests, answers each once its
/// record is committed to the store, and keeps the accounting file following the store (see
/// `AccountingFile` for the exactly-once invariant).
///
/// The store is the truth: a record is acknowledged after one durable commit, and its line
/// reaches the file right after, off the reply's path. A crash in between loses nothing: the
/// line is written by the next append or, after a restart, by the start-up repair. While the
/// file cannot be written (a full disk) records are still stored but answered 503, so senders
/// keep them and an operator sees it; the file is retried on its own until it takes them.
///
/// Group commit, twice: records that arrive while a commit runs go out together in the next
/// one, and lines committed while the file is being appended and synced go out together in
/// the next append. The blocking work runs on serial queues of its own, off Swift's
/// cooperative pool that serves the HTTP requests.
public actor AccountingLedger {
    private typealias Reply = CheckedContinuation<[Result<AccountingReceipt, BDockerError>], Never>

    /// Nil once closed.
    private var file: AccountingFile?
    private let store: AccountingStore
    private let logger: Logger
    /// `[batch] bdocker_accounting`.
    public nonisolated let filePath: String
    /// What the ledger counts (`GET /metrics` renders `metrics.exposition`).
    public nonisolated let metrics: AccountingMetrics
    /// Submissions not yet committed: one request's records (one, or a batch's) and its reply.
    private var waiting: [(records: [SGEAccountingRecord], sentBy: String?, reply: Reply)] = []
    /// The task committing queued submissions, while there are any.
    private var committer: Task<Void, Never>?
    /// Set while a lone request commits its own records (see `submit`).
    private var committingInline = false
    /// The task appending committed lines to the file, while there are any.
    private var appender: Task<Void, Never>?
    /// Set when records were committed while the appender ran: it goes round once more.
    private var appendAgain = false
    /// Callers of `settle()` waiting for the append under way to finish.
    private var attemptWaiters: [CheckedContinuation<Void, Never>] = []
    /// Set by `close()`: no new submissions, no more retries of a failing file.
    private var closing = false
    /// Why the last append failed; nil while the file keeps up.
    private var fileFault: BDockerError?
    private let commitQueue = DispatchQueue(label: "bdocker.accounting-store")
    private let fileQueue = DispatchQueue(label: "bdocker.accounting-file")

    /// Most records committed as one batch, so one huge burst does not hold every reply back.
    static let batchLimit = 1_000
    /// How long committed lines wait to be appended together (the file trails the store by this).
    /// Each append costs the disk a write, an fdatasync and a confirming commit that shares the
    /// writer with the requests' commits; at 4 ms a single client paid for one every ~5 records
    /// (~20 % of its rate), at 25 ms one every ~30. qacct never notices 25 ms.
    static let appendDelay: Duration = .milliseconds(25)
    /// How long a failing file waits before it is tried again with no new record to prompt it.
    static let retryDelay: Duration = .seconds(2)

    /// Opens the file and repairs it (see `AccountingFile.repair`) before any request is taken;
    /// a file it cannot vouch for stops the daemon here, with the reason. A file it cannot
    /// append to (a full disk) does not: the daemon starts, answers 503 and retries the file.
    public init(database: BDockerDatabase, filePath: String, logger: Logger,
                metrics: AccountingMetrics = AccountingMetrics()) throws(BDockerError) {
        let store = AccountingStore(pool: database.pool)
        // Checkpoint the WAL every ~40 MB instead of SQLite's ~4 MB: each checkpoint writes and
        // syncs the database file inside some request's commit, and a record touches a dozen
        // pages (table and indexes), so the default put one on every ~80th request's path.
        do {
            try database.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000") }
        } catch {
            throw .internalFault("setting up the accounting store failed", cause: error)
        }
        var file = AccountingFile(path: filePath, store: store, logger: logger, syncTimer: metrics.fileSyncSeconds)
        // Repairs first (a new file starts dirty), then writes what a crash left unwritten.
        let fault = try file.start()
        self.file = file
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.filePath = filePath
        self.fileFault = fault
        if fault != nil {
            Task { await self.startAppending() }
        }
    }

    deinit {
        // A ledger dropped without close() still releases the file and its lock.
        if var file { file.closeFile() }
    }

    /// Waits for the commits and the append under way; true when the file then holds the line
    /// of every committed record, false while it cannot be written (`fileProblem` says why).
    public func settle() async -> Bool {
        while true {
            if let running = committer {
                await running.value
                continue
            }
            if committingInline {
                try? await Task.sleep(for: .milliseconds(1))
                continue
            }
            guard appender != nil, fileFault == nil else { return fileFault == nil }
            await withCheckedContinuation { attemptWaiters.append($0) }
        }
    }

    /// Why the file is behind the store, while it is.
    public var fileProblem: String? { fileFault?.message }

    /// Stores the record, or finds it already stored (`new` false). A different record under
    /// the same key is a `conflict`; a stored record whose file is failing is `unavailable`.
    /// `sentBy`: the node whose verified client certificate carried it (stored as `sent_by`).
    public func submit(_ record: SGEAccountingRecord, sentBy: String? = nil) async throws(BDockerError) -> AccountingReceipt {
        guard let result = await submit([record], sentBy: sentBy).first else { throw .internalFault("the ledger returned no result") }
        return try result.get()
    }

    /// Many records at once (a batch request): they are committed together, in order, one
    /// result each.
    public func submit(_ records: [SGEAccountingRecord], sentBy: String? = nil) async -> [Result<AccountingReceipt, BDockerError>] {
        guard file != nil, !closing else {
            return Array(repeating: .failure(.unavailable("the accounting ledger is shutting down")), count: records.count)
        }
        guard !records.isEmpty else { return [] }
        let arrived = ContinuousClock.now
        defer { metrics.ingestSeconds.record(duration: ContinuousClock.now - arrived) }
        // Nobody committing: this request commits its own records right here, without handing
        // them to a committer task and waiting to be woken (two fewer thread hops for a lone
        // request). Requests arriving meanwhile queue up and go out together afterwards.
        if committer == nil && !committingInline {
            committingInline = true
            let results = await commit(records, senders: Array(repeating: sentBy, count: records.count))
            committingInline = false
            if !waiting.isEmpty && committer == nil {
                committer = Task { await commitWaiting() }
            }
            return results
        }
        return await withCheckedContinuation { (reply: Reply) in
            waiting.append((records, sentBy, reply))
            if committer == nil && !committingInline {
                committer = Task { await commitWaiting() }
            }
        }
    }

    /// Waits for the commits and the append in progress, then releases the file and its lock.
    /// Later submissions are refused.
    public func close() async {
        closing = true
        appender?.cancel()  // ends a retry's wait; an append under way finishes
        while committer != nil || appender != nil || committingInline {
            if let running = committer { await running.value }
            if let running = appender { await running.value }
            if committingInline { try? await Task.sleep(for: .milliseconds(1)) }
        }
        guard let current = file else { return }
        file = nil
        await offload(fileQueue) {
            var closing = current
            closing.closeFile()
        }
    }

    /// Commits batches until nobody waits, answering each as soon as its commit is durable.
    /// A batch takes whole submissions, up to `batchLimit` records (a larger one goes alone).
    private func commitWaiting() async {
        while !waiting.isEmpty {
            var taken = 1, count = waiting[0].records.count
            while taken < waiting.count, count + waiting[taken].records.count <= Self.batchLimit {
                count += waiting[taken].records.count
                taken += 1
            }
            let batch = Array(waiting.prefix(taken))
            waiting.removeFirst(taken)
            let senders = batch.flatMap { Array(repeating: $0.sentBy, count: $0.records.count) }
            var rest = await commit(batch.flatMap(\.records), senders: senders)[...]
            for entry in batch {
                entry.reply.resume(returning: Array(rest.prefix(entry.records.count)))
                rest = rest.dropFirst(entry.records.count)
            }
        }
        committer = nil
    }

    /// One durable commit of the records; the file is told to follow. A record stored while the
    /// file fails is answered 503 (it is kept, and written when the file takes lines again).
    private func commit(_ records: [SGEAccountingRecord], senders: [String?]) async -> [Result<AccountingReceipt, BDockerError>] {
        let store = self.store
        let admissions = await offload(commitQueue) { () -> [Result<AccountingStore.Admission, BDockerError>] in
            do throws(BDockerError) { return try store.admit(records, senders: senders) } catch { return Array(repeating: .failure(error), count: records.count) }
        }
        var stored = 0, duplicates = 0
        for admission in admissions {
            switch try? admission.get() {
            case .stored: stored += 1
            case .alreadyStored: duplicates += 1
            case nil: break
            }
        }
        if stored > 0 {
            metrics.recordsStored.increment(by: stored)
            startAppending()
        }
        if duplicates > 0 { metrics.duplicates.increment(by: duplicates) }
        let fault = fileFault
        return zip(records, admissions).map { record, admission in
            admission.flatMap { admitted -> Result<AccountingReceipt, BDockerError> in
                if let fault {
                    return .failure(.unavailable("the record for \(record.key) is stored, but the accounting file "
                        + "could not be written (\(fault.message)); it is written when that is fixed; send it again later"))
                }
                return .success(AccountingReceipt(new: admitted == .stored, record: record.key.description))
            }
        }
    }

    /// Appends what the file lacks, again while more is committed meanwhile; while the file
    /// fails, retries every `retryDelay` until it takes the lines or the ledger closes.
    private func startAppending() {
        guard appender == nil else {
            appendAgain = true
            return
        }
        appender = Task { await appendCommitted() }
    }

    private func appendCommitted() async {
        repeat {
            // Let a few more commits arrive first: one write and one fdatasync then carry them
            // all, so a steady trickle of records does not cost the disk a second sync each.
            // (Skipped once closing: the task is cancelled, and the sleep returns at once.)
            try? await Task.sleep(for: Self.appendDelay)
            appendAgain = false
            guard let current = file else { break }
            let (updated, fault) = await offload(fileQueue) { () -> (AccountingFile, BDockerError?) in
                var file = current
                do throws(BDockerError) {
                    try file.appendPending()
                    return (file, nil)
                } catch {
                    return (file, error)
                }
            }
            if file != nil { file = updated }
            if let fault, fileFault == nil {
                logger.error("accounting file \(updated.path): \(fault.message); records are kept in the store and written when it can be")
            } else if fault == nil, let old = fileFault {
                logger.notice("accounting file \(updated.path) is written again (after: \(old.message))")
            }
            fileFault = fault
            for waiter in attemptWaiters { waiter.resume() }
            attemptWaiters = []
            if fault != nil, !closing, !appendAgain {
                // Nothing new to prompt a retry: try again after a while.
                try? await Task.sleep(for: Self.retryDelay)
                appendAgain = !closing
            }
        } while appendAgain && !(closing && fileFault != nil)
        appender = nil
    }

    private func offload<T: Sendable>(_ queue: DispatchQueue, _ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
