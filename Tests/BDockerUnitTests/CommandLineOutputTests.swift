@testable import BDConfig
import BDCore
import BDTestSupport
import Foundation
import Testing

@Suite("Command-line output and the key tables")
struct CommandLineOutputTests {
    @Test func tablesPadToTheWidestCellAlignNumbersRightAndTrimLines() {
        let table = TextTable(header: ["OWNER", "CPU"], rows: [["ann", "12.5"], ["bobby", "3"]], rightAligned: [1], rule: "=")
        #expect(table.render() == """
            OWNER   CPU
            ===========
            ann    12.5
            bobby     3

            """)
        // docker ps's shape: three spaces, no rule, an empty last cell leaves no trailing blanks.
        #expect(TextTable(header: ["ID", "NAMES"], rows: [["abc", ""]], gap: 3).render() == "ID    NAMES\nabc\n")
    }

    /// Every key a section's table reads is documented in docs/configuration.md, under its section.
    @Test func everyConfigKeyIsDocumented() throws {
        let doc = try String(contentsOfFile: Repo.path("docs/configuration.md"), encoding: .utf8)
        for (section, keys) in SettingsLoader.knownKeys {
            let start = try #require(doc.range(of: "## [\(section)]"), "docs/configuration.md has no [\(section)] section")
            let body = doc[start.upperBound...].prefix { $0 != "#" }
            for key in keys {
                #expect(body.contains("`\(key)`"), "[\(section)] \(key) is not documented in docs/configuration.md")
            }
        }
    }

    @Test func theDefaultDatabaseFollowsTheRole() throws {
        for role in Role.allCases {
            let ini = try INIFile(path: "t.cfg", text: "[resource]\nrole = \(role.rawValue)\n[server]\n[batch]\ncontroller = SGE\nbdocker_accounting = /x\n[credentials]\n[dockerAPI]\nbase_url = unix:///d.sock\n")
            #expect(try SettingsLoader.settings(from: ini).server.database == "/var/lib/bdocker/\(role.rawValue).sqlite")
        }
    }

    @Test(arguments: [
        (["-H", "unix:///s", "ps", "-a"], ["ps", "-H", "unix:///s", "-a"]),
        (["-Hunix:///s", "--config", "/c", "logs", "x"], ["logs", "-Hunix:///s", "--config", "/c", "x"]),
        (["--host=h:1", "info"], ["info", "--host=h:1"]),
        (["ps", "-H", "unix:///s"], ["ps", "-H", "unix:///s"]),
        (["--version"], ["--version"]),
        (["-H", "unix:///s"], ["-H", "unix:///s"]),
    ])
    func connectionOptionsBeforeTheCommandMoveBehindIt(given: [String], expected: [String]) {
        #expect(GlobalOptions.movedAfterCommand(given) == expected)
    }

    /// The real client: `-H` before the command is the endpoint it tries.
    @Test func theClientTakesDashHBeforeTheCommand() async throws {
        let result = try await runCommand(Repo.binDir + "/bdocker", ["-H", "unix:///nonexistent/bd.sock", "ps", "--token", "t"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unix:///nonexistent/bd.sock"), "\(result.stderr)")
    }

    /// A usage error is one line naming the problem, exit 64 (EX_USAGE), from every binary.
    @Test(arguments: [("bdocker", ["run"], "Missing expected argument"), ("bdockerd", ["--role", "bad"], "'bad' is invalid"),
                      ("bdocker-acct", ["sql", "--format", "xml", "q"], "'xml' is invalid")])
    func argumentErrorsAreOneLine(program: String, arguments: [String], message: String) async throws {
        let result = try await runCommand(Repo.binDir + "/" + program, arguments)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("\(program): ") && result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }
}
