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
    private typealias Reply = CheckedContinuation<Result<AccountingReceipt, BDockerError>, Never>

    /// Nil once closed.
    private var file: AccountingFile?
    private var waiting: [(record: SGEAccountingRecord, reply: Reply)] = []
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
        guard file != nil else { throw .unavailable("the accounting ledger is shutting down") }
        let result = await withCheckedContinuation { (reply: Reply) in
            waiting.append((record, reply))
            if drainer == nil {
                drainer = Task { await drain() }
            }
        }
        return try result.get()
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
    private func drain() async {
        while !waiting.isEmpty, let current = file {
            let batch = Array(waiting.prefix(Self.batchLimit))
            waiting.removeFirst(batch.count)
            let records = batch.map(\.record)
            let (updated, results) = await offload {
                var file = current
                let results = file.commit(records)
                return (file, results)
            }
            file = updated
            for (entry, result) in zip(batch, results) { entry.reply.resume(returning: result) }
        }
        drainer = nil
    }

    private func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
