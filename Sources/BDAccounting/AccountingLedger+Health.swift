import BDCore
import BDMetrics
import BDStore
import CoreMetrics
import Foundation
import GRDB

/// What `GET /metrics` and `GET /ready` ask of the accounting daemon.
extension AccountingLedger {
    /// Sets the gauges from the store and the file just before a scrape.
    public func refreshGauges(database: BDockerDatabase) async {
        if let (all, unwritten) = try? await database.pool.read({ db -> (Int, Int) in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM records") ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM records WHERE appended_at IS NULL") ?? 0)
        }) {
            metrics.records.record(all)
            metrics.recordsNotInFile.record(unwritten)
        }
        var info = stat()
        if stat(filePath, &info) == 0 { metrics.fileBytes.record(Int64(info.st_size)) }
    }

    /// Ready when the store takes a write and the accounting file is being written.
    public func readiness(database: BDockerDatabase) async -> ReadinessResult {
        let writable = await database.probeWritable()
        let fileProblem = self.fileProblem
        return ReadinessResult(checks: [
            .init(name: "database", ok: writable == nil, detail: writable ?? "\(database.path) takes writes"),
            .init(name: "accounting_file", ok: fileProblem == nil,
                  detail: fileProblem.map { "records are stored but not written to \(filePath): \($0)" } ?? "\(filePath) is written"),
        ])
    }
}
