import BDClient
import BDCore
import BDMetrics
import BDStore
import Foundation
import GRDB

/// What `GET /metrics` and `GET /ready` ask of a working node.
extension WorkingNode {
    /// The states Docker gives a container; each gets a series (0 when none), so a state that
    /// empties shows as 0 rather than as its last value.
    static let containerStates = ["created", "running", "paused", "restarting", "removing", "exited", "dead"]

    /// Sets the gauges of the node's state just before a scrape: live jobs and the outbox from
    /// the store, bdocker's containers by state from the engine (left as they were when the
    /// engine does not answer: `/ready` says so).
    public func refreshGauges() async {
        let now = Date().timeIntervalSince1970
        if let counts = try? await database.pool.read({ db -> (Int, [String: Int], Double?) in
            let live = try JobRecord.filter(JobRecord.Columns.state == JobRecord.State.configured.rawValue).fetchCount(db)
            var outbox: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) FROM outbox GROUP BY state") {
                outbox[row[0]] = row[1]
            }
            let oldest = try Double.fetchOne(db, sql: "SELECT min(created_at) FROM outbox WHERE state = 'pending'")
            return (live, outbox, oldest)
        }) {
            metrics.jobsLive.record(counts.0)
            for state in ["pending", "delivered", "rejected"] {
                metrics.outboxRecords(state: state).record(counts.1[state] ?? 0)
            }
            metrics.outboxOldestPendingSeconds.record(counts.2.map { max(0, now - $0) } ?? 0)
        }
        if let docker, let containers = try? await docker.list(all: true, havingLabel: Self.jobLabel) {
            var byState: [String: Int] = [:]
            for container in containers { byState[container.state, default: 0] += 1 }
            for state in Set(Self.containerStates).union(byState.keys) {
                metrics.containers(state: state).record(byState[state] ?? 0)
            }
        }
    }

    /// Whether the node can take jobs: the database takes a write, the engine answers, and the
    /// accounting daemon (when one is configured) answers.
    public func readiness() async -> ReadinessResult {
        var checks: [ReadinessResult.Check] = []
        let writable = await database.probeWritable()
        checks.append(.init(name: "database", ok: writable == nil, detail: writable ?? "\(database.path) takes writes"))
        if let docker {
            do {
                try await docker.ping()
                checks.append(.init(name: "docker", ok: true, detail: "the engine answers"))
            } catch {
                checks.append(.init(name: "docker", ok: false, detail: error.message))
            }
        }
        if let problem = await outbox?.endpointProblem() {
            checks.append(.init(name: "accounting_endpoint", ok: problem.isEmpty, detail: problem.isEmpty ? "the accounting daemon answers" : problem))
        }
        return ReadinessResult(checks: checks)
    }
}

extension OutboxSender {
    /// Nil when no endpoint is configured; "" when the accounting daemon answers (any HTTP reply
    /// will do: it is up and reachable); otherwise why it cannot be reached.
    public func endpointProblem() async -> String? {
        guard let client else { return nil }
        // A short timeout of its own: the deliveries' (the server timeout) is minutes.
        let probe = DaemonClient(endpoint: client.endpoint, timeoutSeconds: 5)
        do {
            _ = try await probe.raw(.GET, "/health")
            return ""
        } catch {
            return error.message
        }
    }
}
