import ArgumentParser
import BDCore

@main
struct BDockerAcct: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bdocker-acct",
        abstract: "Read the bdocker accounting store (export, summaries, audits).",
        version: BDockerVersion.current)
}
