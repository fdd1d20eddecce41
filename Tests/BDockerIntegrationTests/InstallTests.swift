import BDTestSupport
import Foundation
import Testing

/// tools/install.sh into a staging directory: what an admin gets on a node.
@Suite("Install", .requires(.root))
struct InstallTests {
    let dir = TempDir("bdocker-install")

    func install() async throws -> String {
        let r = try await runCommand("/bin/bash", [Repo.path("tools/install.sh"), "--bin-dir", Repo.binDir, "--destdir", dir.path])
        try #require(r.status == 0, "install.sh: \(r.stderr)")
        return dir.path + "/usr/local"
    }

    @Test func bashCompletionCompletesEachCommandsSubcommandsAndOptions() async throws {
        let prefix = try await install()
        for exe in ["bdocker", "bdockerd", "bdocker-acct"] {
            #expect(FileManager.default.fileExists(atPath: "\(prefix)/share/zsh/site-functions/_\(exe)"))
        }
        // What bash offers after typing WORDS and pressing tab.
        func offered(_ words: [String]) async throws -> [String] {
            let exe = words[0]
            let script = """
                source '\(prefix)/share/bash-completion/completions/\(exe)'
                COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " "))); COMP_CWORD=\(words.count - 1)
                COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
                fn=$(complete -p '\(exe)' | sed 's/.* -F \\([^ ]*\\) .*/\\1/')
                "$fn" '\(exe)' "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let r = try await runCommand("/bin/bash", ["-c", script], environment: ["PATH": "\(prefix)/bin:/usr/bin:/bin"])
            #expect(r.status == 0, "\(r.stderr)")
            return r.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try await offered(["bdocker", "ru"]) == ["run"])
        #expect(try await offered(["bdocker", "logs", "--ta"]).contains("--tail"))
        #expect(try await offered(["bdockerd", "--check"]).contains("--check-config"))
        #expect(try await offered(["bdocker-acct", "sum"]).contains("summary"))
    }

    @Test func manPagesForEveryCommandAndSubcommand() async throws {
        let man = try await install() + "/share/man/man1"
        for page in ["bdocker", "bdocker.run", "bdocker.logs", "bdocker.kill", "bdockerd", "bdocker-acct", "bdocker-acct.summary"] {
            let text = try String(contentsOfFile: "\(man)/\(page).1", encoding: .utf8)
            #expect(text.contains(".Dt \(page.uppercased()) 1"), "\(page).1 is not an mdoc page")
        }
        // Generated from the parser: the options are the binary's own.
        #expect(try String(contentsOfFile: "\(man)/bdocker.run.1", encoding: .utf8).contains("sig-proxy"))
    }

    @Test func everyLinkInTheInstalledDocsReachesAnInstalledDoc() async throws {
        let docs = try await install() + "/share/doc/bdocker"
        let files = try FileManager.default.contentsOfDirectory(atPath: docs).filter { $0.hasSuffix(".md") }
        #expect(files.contains("deploy.md") && files.contains("usage.md") && files.contains("configuration.md"))
        let link = /\]\(([A-Za-z0-9_.\-\/]+\.md)(#[^)]*)?\)/
        for file in files {
            let text = try String(contentsOfFile: docs + "/" + file, encoding: .utf8)
            for match in text.matches(of: link) where !match.1.contains("://") {
                #expect(FileManager.default.fileExists(atPath: docs + "/" + match.1), "\(file) links to \(match.1), which is not installed")
            }
        }
    }
}
