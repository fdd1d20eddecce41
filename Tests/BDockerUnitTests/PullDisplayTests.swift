import BDClient
import BDCore
import Foundation
import Testing

/// `pull`'s progress display: a job's output file gets one line per layer status, a terminal
/// one redrawn line per layer, `-q` nothing.
@Suite("Pull display")
struct PullDisplayTests {
    /// What the engine sends for a two-layer pull: many progress messages per layer.
    static let messages: [PullLine] = {
        var m = [PullLine(id: "latest", status: "Pulling from busybox", progress: nil)]
        for layer in ["aaaaaaaaaaaa", "bbbbbbbbbbbb"] {
            m.append(PullLine(id: layer, status: "Pulling fs layer", progress: nil))
        }
        for n in 1...50 {
            m.append(PullLine(id: "aaaaaaaaaaaa", status: "Downloading", progress: "[=>   ] \(n)kB/50kB"))
            m.append(PullLine(id: "bbbbbbbbbbbb", status: "Downloading", progress: "[=>   ] \(n)kB/50kB"))
        }
        for layer in ["aaaaaaaaaaaa", "bbbbbbbbbbbb"] {
            m.append(PullLine(id: layer, status: "Download complete", progress: nil))
            m.append(PullLine(id: layer, status: "Pull complete", progress: nil))
        }
        m.append(PullLine(id: nil, status: "Digest: sha256:0123", progress: nil))
        m.append(PullLine(id: nil, status: "Status: Downloaded newer image for r/busybox:latest", progress: nil))
        return m
    }()

    func shown(_ mode: PullDisplay.Mode) -> String {
        var out = ""
        let display = PullDisplay(mode: mode) { out += $0 }
        for m in Self.messages { display.show(m.json) }
        return out
    }

    @Test func aFileGetsOneLinePerLayerStatus() {
        let lines = shown(.lines).split(separator: "\n").map(String.init)
        #expect(lines == [
            "latest: Pulling from busybox",
            "aaaaaaaaaaaa: Pulling fs layer", "bbbbbbbbbbbb: Pulling fs layer",
            "aaaaaaaaaaaa: Downloading", "bbbbbbbbbbbb: Downloading",
            "aaaaaaaaaaaa: Download complete", "aaaaaaaaaaaa: Pull complete",
            "bbbbbbbbbbbb: Download complete", "bbbbbbbbbbbb: Pull complete",
            "Digest: sha256:0123", "Status: Downloaded newer image for r/busybox:latest",
        ])
    }

    @Test func aTerminalRedrawsOneLinePerLayer() {
        let out = shown(.terminal)
        // Each update moves up over the two layer lines and rewrites them, cleared.
        #expect(out.contains("\u{1B}[2A\u{1B}[2K\raaaaaaaaaaaa: Downloading [=>   ] 50kB/50kB\n\u{1B}[2K\rbbbbbbbbbbbb: Downloading"))
        // Its final state: both layers complete, then the image's own lines.
        #expect(out.hasSuffix("\u{1B}[2K\raaaaaaaaaaaa: Pull complete\n\u{1B}[2K\rbbbbbbbbbbbb: Pull complete\n"
            + "Digest: sha256:0123\nStatus: Downloaded newer image for r/busybox:latest\n"))
    }

    @Test func quietShowsNothingAndTextFromAnOlderDaemonPassesThrough() {
        #expect(shown(.quiet).isEmpty)
        var out = ""
        PullDisplay(mode: .lines) { out += $0 }.show(Array("abc: Pulling fs layer".utf8))
        #expect(out == "abc: Pulling fs layer\n")
    }
}
