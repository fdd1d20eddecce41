import ArgumentParser
import BDAccounting
import BDCore
import Foundation

struct Job: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each record of a job, field by field, as qacct -j shows it.",
        discussion: """
            One block per record (an array job has one per task, a rerun one per run), in the \
            order received, with qacct's field names, order and formats; times in local time as \
            qacct prints them. Without a job number every record the filters select (qacct -j \
            alone). Nothing selected is an error, as qacct's "job id N not found".
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var filters: FilterOptions

    @Option(name: .customShort("o"), help: ArgumentHelp("Only this owner's jobs: qacct's -o, as -u/--owner.", valueName: "owner"))
    var shortOwner: String?

    @Flag(help: "JSON: an array of records, each with the 45 fields of man 5 sge_accounting as stored (times in epoch seconds).")
    var json = false

    @Argument(help: "The job number (or -j N).")
    var number: Int?

    func run() async throws {
        do {
            let filter = try filters.filter(shortOwner: shortOwner, jobArgument: number)
            let reader = try store.reader()
            var records: [SGEAccountingRecord] = []
            let count = try reader.forEachRecord(filter) { record throws(BDockerError) in
                // Text streams, so listing every job never holds them all; JSON is one array.
                if json { records.append(record) } else { print(QacctFormat.job(record), terminator: "") }
            }
            guard count > 0 else { throw Self.notFound(filter) }
            if json { print(try OutputFormat.json(records)) }
        } catch {
            CommandLineExit.fail(error)
        }
    }

    /// qacct's words where they fit: "job id N not found".
    static func notFound(_ filter: AccountingFilter) -> BDockerError {
        var narrowed = filter
        narrowed.job = nil
        narrowed.tasks = nil
        let others = narrowed == AccountingFilter() ? "" : " among the records the filters select"
        guard let job = filter.job else { return .notFound("no job record matches the filters") }
        if let tasks = filter.tasks { return .notFound("job id \(job) task \(tasks) not found\(others)") }
        return .notFound("job id \(job) not found\(others)")
    }
}
