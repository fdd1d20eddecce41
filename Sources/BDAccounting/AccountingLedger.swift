import BDCore
import BDStore
import Dispatch
import Logging

/// Takes accounting records from any number of concurrent requests and answers each once its
/// record is in the store and its line in the accounting file (see `AccountingFile` for the
/// exactly-once invariant).
///
/// Group commit: records that arrive while a batch is being written wait together and go out as
/// the next batch — one store commit, one write, one fdatasync and one confirming commit for all
/// of them — so the cost of durability is shared as load grows. The blocking work runs on a
/// serial queue of its own, off Swift's cooperative pool that serves the HTTP requests.
public actor AccountingLedger {
    private typealias Reply = CheckedContinuation<[Result<AccountingReceipt, BDockerError>], Never>

    /// Nil once closed.
    private var file: AccountingFile?
    /// Submissions not yet written: one request's records (one, or a batch's) and its reply.
    private var waiting: [(records: [SGEAccountingRecord], reply: Reply)] = []
    /// The task writing batches, while there are any.
    private var drainer: Task<Void, Never>?
    private let queue = DispatchQueue(label: "bdocker.accounting-file")

    /// Most records written as one batch, so one huge burst does not hold every reply back.
    static let batchLimit = 1_000

    /// Opens the file and repairs it (see `AccountingFile.repair`) before any request is taken;
    /// a file it cannot vouch for stops the daemon here, with the reason. A file it cannot
    /// append to (a full disk) does not: the daemon starts and answers 503 until it can.
    public init(database: BDockerDatabase, filePath: String, logger: Logger) throws(BDockerError) {
        var file = AccountingFile(path: filePath, store: AccountingStore(pool: database.pool), logger: logger)
        // Repairs first (a new file starts dirty), then writes what a crash left unwritten.
        try file.start()
        self.file = file
    }

    deinit {
        // A ledger dropped without close() still releases the file and its lock.
        if var file { file.closeFile() }
    }

    /// Stores the record and appends its line, or finds it already stored (`new` false). A
    /// different record under the same key is a `conflict`.
    public func submit(_ record: SGEAccountingRecord) async throws(BDockerError) -> AccountingReceipt {
        guard let result = await submit([record]).first else { throw .internalFault("the ledger returned no result") }
        return try result.get()
    }

    /// Many records at once (a batch request): they go out together, in order, one result each.
    public func submit(_ records: [SGEAccountingRecord]) async -> [Result<AccountingReceipt, BDockerError>] {
        guard file != nil else {
            return Array(repeating: .failure(.unavailable("the accounting ledger is shutting down")), count: records.count)
        }
        guard !records.isEmpty else { return [] }
        return await withCheckedContinuation { (reply: Reply) in
            waiting.append((records, reply))
            if drainer == nil {
                drainer = Task { await drain() }
            }
        }
    }

    /// Waits for the batch in progress, then releases the file and its lock. Later submissions
    /// are refused.
    public func close() async {
        while let running = drainer { await running.value }
        guard let current = file else { return }
        file = nil
        await offload {
            var closing = current
            closing.closeFile()
        }
    }

    /// Writes batches until nobody waits. `file` is set throughout: `close()` waits for this.
    /// A batch takes whole submissions, up to `batchLimit` records (a larger submission goes
    /// alone).
    private func drain() async {
        while !waiting.isEmpty, let current = file {
            var taken = 1, count = waiting[0].records.count
            while taken < waiting.count, count + waiting[taken].records.count <= Self.batchLimit {
                count += waiting[taken].records.count
                taken += 1
            }
            let batch = Array(waiting.prefix(taken))
            waiting.removeFirst(taken)
            let records = batch.flatMap(\.records)
            let (updated, results) = await offload {
                var file = current
                let results = file.commit(records)
                return (file, results)
            }
            file = updated
            var rest = results[...]
            for entry in batch {
                entry.reply.resume(returning: Array(rest.prefix(entry.records.count)))
                rest = rest.dropFirst(entry.records.count)
            }
        }
        drainer = nil
    }

    private func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
