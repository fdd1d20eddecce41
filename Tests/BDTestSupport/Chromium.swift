import BDCore
import Foundation
import HummingbirdBcrypt

/// Debian's `chromium`, headless: what a person's browser makes of a page. Each run has a
/// profile of its own under /tmp, removed after; as root it needs `--no-sandbox`.
public enum Chromium {
    public static let path = "/usr/bin/chromium"

    /// The DOM once the page has loaded (scripts run, layout done).
    public static func dumpDOM(_ url: String) async throws -> String {
        let result = try await run(["--dump-dom", url])
        guard result.status == 0, !result.stdout.isEmpty else {
            throw BDockerError.internalFault("chromium --dump-dom \(url) failed (\(result.status)): \(result.stderr.suffix(600))")
        }
        return result.stdout
    }

    /// A PNG of the page at `width`×`height`, written to `file`.
    public static func screenshot(_ url: String, to file: String, width: Int = 1280, height: Int = 2000) async throws {
        let result = try await run(["--screenshot=\(file)", "--window-size=\(width),\(height)", "--hide-scrollbars", url])
        guard result.status == 0, FileManager.default.fileExists(atPath: file) else {
            throw BDockerError.internalFault("chromium --screenshot \(url) failed (\(result.status)): \(result.stderr.suffix(600))")
        }
    }

    static func run(_ arguments: [String]) async throws -> CommandResult {
        let profile = TempDir("bdocker-chromium")
        return try await runCommand(path, [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--user-data-dir=\(profile.path)",
        ] + arguments, environment: ["HOME": profile.path, "PATH": "/usr/bin:/bin", "TZ": "UTC"])
    }

    /// Width and height of a PNG file, from its IHDR chunk.
    public static func pngSize(_ file: String) -> (width: Int, height: Int)? {
        guard let data = FileManager.default.contents(atPath: file), data.count > 24,
              data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { return nil }
        func u32(_ at: Int) -> Int { data[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (u32(16), u32(20))
    }
}

/// A `[report] users_file` as `htpasswd -B` writes it: `name:$2y$...` lines, mode 0600.
public enum ReportUsersFixture {
    /// Writes the file into `dir` and returns its path. `$2y$` as htpasswd spells bcrypt.
    @discardableResult
    public static func write(_ dir: TempDir, _ users: [(name: String, password: String)], name: String = "report_users") -> String {
        let lines = users.map { user in
            "\(user.name):$2y$" + Bcrypt.hash(user.password, cost: 5).dropFirst(4)
        }
        return dir.write(name, "# bdocker report users\n" + lines.joined(separator: "\n") + "\n", mode: 0o600)
    }
}
