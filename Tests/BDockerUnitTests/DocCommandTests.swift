import BDAccounting
import BDConfig
import BDCore
import BDStore
import BDTestSupport
import Foundation
import Logging
import Testing

/// Every command line README.md and docs/*.md show is in Tests/Fixtures/doc-commands.txt, and
/// the list names no line the docs dropped; the accounting lines run against a sample store.
/// The job and root lines run in the integration target (DocCommandRunTests).
@Suite("Command lines in the docs")
struct DocCommandTests {
    let list: DocCommands.List

    init() throws {
        list = try DocCommands.list()
    }

    @Test func theListAndTheDocsAgree() throws {
        let docLines = try DocCommands.docLines()
        var listed: [String: DocCommands.Entry] = [:]
        for entry in list.entries {
            let key = entry.file + "\n" + entry.command
            if let first = listed[key] {
                Issue.record("\(entry.place): `\(entry.command)` is listed twice (first at \(first.place))")
            }
            listed[key] = entry
        }
        var shown: [String: DocCommands.DocLine] = [:]
        for line in docLines where shown[line.file + "\n" + line.command] == nil {
            shown[line.file + "\n" + line.command] = line
            if listed[line.file + "\n" + line.command] == nil {
                Issue.record("""
                    new command line in \(line.file):\(line.line): `\(line.command)`; add it under [\(line.file)] in \
                    \(DocCommands.listPath) as an entry that runs it (acct, qacct, job, root) or as `skip` with a `why` \
                    (the list's header and docs/testing.md say how)
                    """)
            }
        }
        for entry in list.entries where shown[entry.file + "\n" + entry.command] == nil {
            Issue.record("\(entry.place): `\(entry.command)` is in no code block of \(entry.file) any more; remove the entry or change it to the doc's new line")
        }
        // In the doc's order: lines of one kind run in the list's order, and may depend on the one before.
        for file in Set(list.entries.map(\.file)) {
            let numbers = list.entries.filter { $0.file == file }.compactMap { shown[$0.file + "\n" + $0.command]?.line }
            #expect(numbers == numbers.sorted(), "[\(file)] in \(DocCommands.listPath) is not in the doc's order: \(numbers)")
        }
    }

    @Test func eachEntryIsComplete() {
        for entry in list.entries {
            if entry.kind == .skip {
                #expect(entry.why != nil, "\(entry.place): `\(entry.command)` is skipped without a `why`")
                #expect(entry.runAs == nil && entry.prints.isEmpty && entry.exit == 0, "\(entry.place): a skipped line has only a `why`")
            } else {
                #expect(entry.why == nil, "\(entry.place): `why` is for skipped lines")
            }
            // A synopsis runs as a concrete line, which must still try every option it shows.
            if let runAs = entry.runAs {
                let missing = DocCommands.options(entry.command).subtracting(DocCommands.options(runAs))
                #expect(missing.isEmpty, "\(entry.place): `as` leaves out \(missing.sorted()) of `\(entry.command)`")
            }
        }
    }

    /// The extraction rule on the cases the docs have.
    @Test func commandLinesAreFoundInCodeBlocksOnly() {
        let markdown = """
            Text with `bdocker ps` inline.

                bdocker ps -a        # the comment goes
                bdocker epilog: job 13 not cleaned
                bdockerd: configuration error

            ```text
            bdocker          → BDCore
            ```

            ```sh
            id=$(bdocker run -d IMAGE sleep 600)   # background
            bdocker ps --format '{{.ID}} # kept'
            ```

                $ qstat -j 11 | grep 'error reason'
                error reason    1:      exit_status of prolog = 100
                bash tools/soak.sh --jobs N \\
                    --logs DIR
            """
        #expect(DocCommands.commands(inMarkdown: markdown).map(\.command) == [
            "bdocker ps -a", "id=$(bdocker run -d IMAGE sleep 600)", "bdocker ps --format '{{.ID}} # kept'",
            "qstat -j 11 | grep 'error reason'",
        ])
        #expect(DocCommands.commands(inMarkdown: "Run:\n\n    bash tools/soak.sh --jobs N \\\n        --logs DIR   # x\n").map(\.command)
                == ["bash tools/soak.sh --jobs N --logs DIR"])
        #expect(DocCommands.options("bdocker-acct sql \"SELECT ...\" [--format table|csv|json] [--epoch] [-o FILE]")
                == ["--format", "--epoch", "-o"])
    }

    @Test func accountingLinesRun() async throws {
        try await runAccountingLines(.acct)
    }

    @Test(.requires(.qacct)) func qacctLinesRun() async throws {
        try await runAccountingLines(.qacct)
    }

    /// The fixture: an accounting daemon's config (`$BDOCKER_CONF_FILE`) whose store holds jobs
    /// 42 and 44 of ann on node1, all.q, and the failed job 43 of bob on node2, gpu.q, all
    /// started on 2026-11-29; `$DOC_ACCOUNTING_FILE` the daemon's file; `$DOC_DIR` scratch.
    func runAccountingLines(_ kind: DocCommands.Entry.Kind) async throws {
        let entries = list.entries.filter { $0.kind == kind }
        let dir = TempDir("bdocker-doccmds")
        let file = dir.file("accounting")
        let config = try TestConfig(role: .accounting, replacing: [
            "bdocker_accounting = /var/log/bdocker/accounting": "bdocker_accounting = \(file)",
        ])
        let start = 1_795_939_200  // 2026-11-29T08:00:00Z
        var failed = SampleAccounting.record(job: 43, host: "node2", owner: "bob", queue: "gpu.q", account: "proj1", start: start + 60)
        failed.failed = 1
        failed.exitStatus = 1
        let store = try BDockerDatabase.open(path: config.settings.server.database, role: "accounting", migrationsDir: nil)
        let ledger = try AccountingLedger(database: store, filePath: file, logger: Logger(label: "test"))
        for record in [SampleAccounting.record(job: 42, start: start), failed, SampleAccounting.record(job: 44, start: start + 3600)] {
            _ = try await ledger.submit(record)
        }
        await ledger.close()

        let outcomes = try await DocCommands.run(entries, of: list, environment: [
            "PATH": Repo.binDir + ":/usr/bin:/bin", "HOME": dir.path, "BDOCKER_CONF_FILE": config.configPath,
            "DOC_DIR": dir.path, "DOC_ACCOUNTING_FILE": file,
        ], in: dir.path)
        DocCommands.expect(entries, outcomes, of: list)
    }
}
