import BDAccounting
import BDCore
import BDCredentials
import BDStore
import Hummingbird
import Logging

/// What the accounting daemon does with a notification: check the admin token, validate the
/// record, and hand it to the ledger (store, then the accounting file, exactly once).
public struct AccountingServer: Sendable {
    public let database: BDockerDatabase
    public let tokens: any TokenController
    public let ledger: AccountingLedger
    public let logger: Logger
    /// The usage report, when `[report] users_file` is set.
    public let report: ReportService?
    /// Per-node mode (`[server] tls_client_ca`): every record must name, as its host, the node
    /// its connection's client certificate names.
    public let identifiesNodes: Bool

    public init(database: BDockerDatabase, tokens: any TokenController, ledger: AccountingLedger, logger: Logger,
                report: ReportService? = nil, identifiesNodes: Bool = false) {
        self.database = database
        self.tokens = tokens
        self.ledger = ledger
        self.logger = logger
        self.report = report
        self.identifiesNodes = identifiesNodes
    }

    /// The original form: one SGE accounting line. `node`: the sending connection's
    /// certificate name (`BDContext.node`).
    public func setAccounting(_ request: SetAccountingRequest, from node: NodeIdentity? = nil) async throws(BDockerError) -> AccountingReceipt {
        try tokens.verifyAdmin(request.adminToken)
        let sender = try sender(node)
        let record = try SGEAccountingRecord.parse(request.accounting)
        try Self.check(record, sentBy: sender)
        return try await store(record, sentBy: sender)
    }

    /// The structured form; the record was validated as it was decoded.
    public func putRecord(_ request: AccountingRecordRequest, from node: NodeIdentity? = nil) async throws(BDockerError) -> AccountingReceipt {
        try tokens.verifyAdmin(request.adminToken)
        let sender = try sender(node)
        try Self.check(request.record, sentBy: sender)
        return try await store(request.record, sentBy: sender)
    }

    /// Who sent it, as far as this daemon can vouch: the certificate's node in per-node mode
    /// (a connection with no name there is refused), nobody otherwise.
    func sender(_ node: NodeIdentity?) throws(BDockerError) -> NodeIdentity? {
        guard identifiesNodes else { return nil }
        guard let node else {
            throw .forbidden("the client certificate names no node (no DNS subject alternative name or CN, wildcards aside); "
                + "records need one in per-node mode")
        }
        return node
    }

    /// A node writes its own records only: the record's host is the certificate's node.
    static func check(_ record: SGEAccountingRecord, sentBy sender: NodeIdentity?) throws(BDockerError) {
        guard let sender else { return }
        guard sender.names(record.hostname) else {
            throw .forbidden("the record for \(record.key) is from host \(record.hostname), but this connection's "
                + "client certificate is for \(sender); a node may send only its own records")
        }
    }

    /// The batch form: every line parsed on its own (a bad one is its own 400), the good ones
    /// handed to the ledger together.
    public func setAccountingBatch(_ request: AccountingBatchRequest, from node: NodeIdentity? = nil) async throws(BDockerError) -> AccountingBatchReceipt {
        try tokens.verifyAdmin(request.adminToken)
        let sender = try sender(node)
        guard request.lines.count <= AccountingBatchRequest.maxLines else {
            throw .invalidInput("a batch holds at most \(AccountingBatchRequest.maxLines) lines, not \(request.lines.count)")
        }
        var items = [AccountingBatchReceipt.Item?](repeating: nil, count: request.lines.count)
        var records: [SGEAccountingRecord] = [], positions: [Int] = []
        for (i, line) in request.lines.enumerated() {
            do {
                let record = try SGEAccountingRecord.parse(line)
                try Self.check(record, sentBy: sender)
                records.append(record)
                positions.append(i)
            } catch {
                items[i] = AccountingBatchReceipt.Item(.failure(error))
            }
        }
        for (i, result) in zip(positions, await ledger.submit(records, sentBy: sender?.name)) { items[i] = AccountingBatchReceipt.Item(result) }
        logger.debug("batch of \(request.lines.count) accounting lines stored")
        return AccountingBatchReceipt(items: items.map { $0 ?? AccountingBatchReceipt.Item(statusCode: 500, error: "no result") })
    }

    private func store(_ record: SGEAccountingRecord, sentBy sender: NodeIdentity?) async throws(BDockerError) -> AccountingReceipt {
        let receipt = try await ledger.submit(record, sentBy: sender?.name)
        // Per record: DEBUG, so a busy cluster does not pay a log line (and its write) per job.
        logger.debug("\(receipt.new ? "stored" : "already had") the record for \(receipt.record)")
        return receipt
    }
}

extension Routes {
    /// Routes of the accounting daemon.
    public static func accounting(_ server: AccountingServer) -> Router<BDContext> {
        let ledger = server.ledger, database = server.database
        let router = base(logger: server.logger, database: database, role: "accounting",
                          health: HealthEndpoints(metrics: ledger.metrics.exposition,
                                                  refresh: { await ledger.refreshGauges(database: database) },
                                                  readiness: { await ledger.readiness(database: database) }))
        router.put("set_accounting") { request, context -> Response in
            var request = request
            return JSONReply.make(try await server.setAccounting(try await request.decodeJSON(SetAccountingRequest.self), from: context.node))
        }
        router.put("set_accounting_batch") { request, context -> Response in
            var request = request
            return JSONReply.make(try await server.setAccountingBatch(try await request.decodeJSON(AccountingBatchRequest.self),
                                                                      from: context.node))
        }
        router.put("accounting") { request, context -> Response in
            var request = request
            return JSONReply.make(try await server.putRecord(try await request.decodeJSON(AccountingRecordRequest.self), from: context.node))
        }
        // Off unless configured: without users there is no /report at all (404).
        if let report = server.report { Routes.report(router, report) }
        return router
    }
}

extension Daemon {
    /// The accounting daemon's parts; the ledger repairs the accounting file before the daemon
    /// listens.
    public func accountingServer() throws -> AccountingServer {
        guard let path = settings.batch.bdockerAccounting else {
            throw settings.error("batch", "bdocker_accounting", "key is missing: the accounting daemon needs the file it appends SGE lines to")
        }
        // The TLS files are checked before the ledger touches the accounting file.
        let tls = ServerTLS(settings: settings)
        _ = try tls?.context()
        return AccountingServer(database: database, tokens: try tokenController(),
                                ledger: try AccountingLedger(database: database, filePath: path, logger: logger), logger: logger,
                                report: try reportService(), identifiesNodes: tls?.requiresClientCertificates == true)
    }
}
