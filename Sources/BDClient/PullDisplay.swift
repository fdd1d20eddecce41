import BDCore
import Foundation

/// How `pull` shows the engine's progress. The engine sends many messages per layer (every
/// few hundred KiB), which would flood a job's output file, so:
/// - on a terminal, one line per layer, redrawn in place as docker does;
/// - otherwise, one line each time a layer's status changes (progress bars left out);
/// - with `-q`, nothing (the image name is printed at the end).
public final class PullDisplay {
    public enum Mode: Sendable { case terminal, lines, quiet }
    public let mode: Mode
    private var write: (String) -> Void
    /// Layers in order of first appearance, with the line shown for each.
    private var layers: [(id: String, line: String)] = []
    private var lastStatus: [String: String] = [:]
    private var drawn = 0

    public init(mode: Mode, write: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.mode = mode
        self.write = write
    }

    public static func mode(quiet: Bool) -> Mode {
        quiet ? .quiet : (isatty(STDOUT_FILENO) == 1 ? .terminal : .lines)
    }

    public func show(_ payload: [UInt8]) {
        guard let line = try? JSONDecoder().decode(PullLine.self, from: Data(payload)) else {
            if mode != .quiet { write(String(decoding: payload, as: UTF8.self) + "\n") }
            return
        }
        switch mode {
        case .quiet: return
        case .lines:
            let key = line.id ?? ""
            // A layer's progress messages repeat its status: print only a change.
            if lastStatus[key] == line.status && line.id != nil { return }
            lastStatus[key] = line.status
            write(PullLine(id: line.id, status: line.status, progress: nil).text + "\n")
        case .terminal:
            guard let id = line.id, Self.isLayer(id) else {
                write(line.text + "\n")
                drawn = 0  // the block of layer lines starts afresh below this line
                layers.removeAll()
                return
            }
            if let index = layers.firstIndex(where: { $0.id == id }) {
                layers[index].line = line.text
            } else {
                layers.append((id, line.text))
            }
            redraw()
        }
    }

    /// Moves up over the layer lines drawn so far and writes them all again, each cleared.
    private func redraw() {
        var out = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        for layer in layers { out += "\u{1B}[2K\r" + layer.line + "\n" }
        drawn = layers.count
        write(out)
    }

    /// A layer id is the engine's 12 hex digits; other ids name the image (e.g. its tag).
    static func isLayer(_ id: String) -> Bool {
        id.count == 12 && id.allSatisfy(\.isHexDigit)
    }
}
