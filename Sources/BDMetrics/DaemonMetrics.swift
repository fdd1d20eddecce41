import CoreMetrics
import Foundation
import Prometheus

/// One daemon's metrics: a Prometheus registry of its own (not swift-metrics' global system, so
/// that several daemons in one test process keep separate counts) and the swift-metrics factory
/// over it that the modules record through. `GET /metrics` renders it.
///
/// Labels only ever carry a small fixed set of values (results, reasons, states): never a user
/// name, job id or container id, which would make one time series per job.
public struct DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Requests here take from well under a millisecond (a commit) to seconds (a clean with
        // many containers): buckets from 0.5 ms up.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.factory = factory
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func render() -> String { registry.emitToString() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// Times a piece of work into a timer (a Prometheus histogram in seconds).
extension CoreMetrics.Timer {
    public func time<T, E: Error>(_ body: () async throws(E) -> T) async throws(E) -> T {
        let start = ContinuousClock.now
        defer { record(duration: ContinuousClock.now - start) }
        return try await body()
    }

    public func record(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// How a call ended, as a label: two values only.
public enum Outcome: String, Sendable {
    case ok, error
}

extension NodeMetrics {
    /// Runs a call, timing it into `timer` and counting how it ended.
    public func counted<T, E: Error>(_ timer: CoreMetrics.Timer, _ count: (Outcome) -> Void,
                                     _ body: () async throws(E) -> T) async throws(E) -> T {
        do {
            let result = try await timer.time(body)
            count(.ok)
            return result
        } catch {
            count(.error)
            throw error
        }
    }
}
