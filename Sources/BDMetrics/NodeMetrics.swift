import CoreMetrics

/// What a working node counts as it works. The gauges of its state (live jobs, containers,
/// outbox) are read from the store when scraped, so they are right after a restart too.
public struct NodeMetrics: Sendable {
    let factory: any MetricsFactory
    /// Where they are kept for `GET /metrics`; nil when disabled.
    public let exposition: DaemonMetrics?

    /// Counts into `daemon` (by default a registry of its own).
    public init(_ daemon: DaemonMetrics = DaemonMetrics()) {
        self.init(factory: daemon.factory, exposition: daemon)
    }

    private init(factory: any MetricsFactory, exposition: DaemonMetrics?) {
        self.factory = factory
        self.exposition = exposition
        configureSeconds = CoreMetrics.Timer(label: "bdocker_configure_duration_seconds", factory: factory)
        cleanSeconds = CoreMetrics.Timer(label: "bdocker_clean_duration_seconds", factory: factory)
        monitorTickSeconds = CoreMetrics.Timer(label: "bdocker_monitor_tick_duration_seconds", factory: factory)
        jobsLive = Gauge(label: "bdocker_jobs_live", factory: factory)
        outboxOldestPendingSeconds = Gauge(label: "bdocker_outbox_oldest_pending_age_seconds", factory: factory)
    }

    /// Counts nothing: for tools and tests that do not serve metrics.
    public static let disabled = NodeMetrics(factory: NOOPMetricsHandler.instance, exposition: nil)

    public let configureSeconds: CoreMetrics.Timer
    public let cleanSeconds: CoreMetrics.Timer
    public let monitorTickSeconds: CoreMetrics.Timer
    public let jobsLive: Gauge
    public let outboxOldestPendingSeconds: Gauge

    public func configured(_ outcome: Outcome) {
        Counter(label: "bdocker_configure_total", dimensions: [("result", outcome.rawValue)], factory: factory).increment()
    }

    public func cleaned(_ outcome: Outcome) {
        Counter(label: "bdocker_clean_total", dimensions: [("result", outcome.rawValue)], factory: factory).increment()
    }

    /// Why the monitor killed a job.
    public enum KillReason: String, Sendable, CaseIterable {
        case cpu, memory
    }

    public func jobKilled(_ reason: KillReason) {
        Counter(label: "bdocker_monitor_jobs_killed_total", dimensions: [("reason", reason.rawValue)], factory: factory).increment()
    }

    /// What became of one delivery attempt of an accounting record.
    public enum Delivery: String, Sendable {
        /// Acknowledged by the accounting daemon.
        case delivered
        /// Refused for good (4xx): kept in the outbox as rejected.
        case rejected
        /// Not acknowledged (daemon down, 5xx): tried again later.
        case retry
    }

    public func delivery(_ result: Delivery, count: Int = 1) {
        Counter(label: "bdocker_outbox_deliveries_total", dimensions: [("result", result.rawValue)], factory: factory)
            .increment(by: count)
    }

    public func containers(state: String) -> Gauge {
        Gauge(label: "bdocker_containers", dimensions: [("state", state)], factory: factory)
    }

    public func outboxRecords(state: String) -> Gauge {
        Gauge(label: "bdocker_outbox_records", dimensions: [("state", state)], factory: factory)
    }
}

/// What the accounting daemon counts.
public struct AccountingMetrics: Sendable {
    let factory: any MetricsFactory
    /// Where they are kept for `GET /metrics`; nil when disabled.
    public let exposition: DaemonMetrics?

    public init(_ daemon: DaemonMetrics = DaemonMetrics()) {
        self.init(factory: daemon.factory, exposition: daemon)
    }

    private init(factory: any MetricsFactory, exposition: DaemonMetrics?) {
        self.factory = factory
        self.exposition = exposition
        recordsStored = Counter(label: "bdocker_accounting_records_stored_total", factory: factory)
        duplicates = Counter(label: "bdocker_accounting_duplicates_total", factory: factory)
        ingestSeconds = CoreMetrics.Timer(label: "bdocker_accounting_ingest_duration_seconds", factory: factory)
        fileSyncSeconds = CoreMetrics.Timer(label: "bdocker_accounting_file_sync_duration_seconds", factory: factory)
        fileBytes = Gauge(label: "bdocker_accounting_file_bytes", factory: factory)
        records = Gauge(label: "bdocker_accounting_records", factory: factory)
        recordsNotInFile = Gauge(label: "bdocker_accounting_records_not_in_file", factory: factory)
    }

    public static let disabled = AccountingMetrics(factory: NOOPMetricsHandler.instance, exposition: nil)

    /// Records stored for the first time.
    public let recordsStored: Counter
    /// Records sent again and acknowledged without being stored twice.
    public let duplicates: Counter
    /// From a request's arrival at the ledger to its durable commit.
    public let ingestSeconds: CoreMetrics.Timer
    /// One fdatasync of the accounting file.
    public let fileSyncSeconds: CoreMetrics.Timer
    /// Read from the store and the file when scraped.
    public let fileBytes: Gauge
    public let records: Gauge
    public let recordsNotInFile: Gauge
}
