import BDCore
import Dispatch
import Foundation

/// The request body of an attached `run -i`/`-t`, produced as it goes: the request frame, then
/// the terminal's size, stdin as it is read and a new size on each SIGWINCH (`StreamFrames`).
/// stdin's EOF ends the body, which the daemon passes on as the container's EOF.
///
/// stdin is read on a thread of its own (a blocking read must not hold a concurrency thread),
/// one chunk at a time: the next read waits until the chunk was taken for sending, so a
/// container that reads slowly slows the reading of stdin instead of filling memory.
final class AttachFrames: AsyncSequence, @unchecked Sendable {
    // @unchecked: the queue, the waiter and `ended` are touched under `lock` only.
    typealias Element = [UInt8]
    private let lock = NSLock()
    private var queue: [(frame: [UInt8], fromStdin: Bool)] = []
    private var waiter: CheckedContinuation<[UInt8]?, Never>?
    private var ended = false
    /// Signalled when a stdin chunk was taken, so the reader reads the next.
    private let taken = DispatchSemaphore(value: 0)
    private var windowChanges: DispatchSourceSignal?

    /// - Parameters:
    ///   - readStdin: forward stdin (`-i`); otherwise the body stays open, for sizes only.
    ///   - terminal: the terminal whose size the container's follows (`-t` on a terminal).
    init(request: RunRequest, readStdin: Bool, terminal: Int32?) throws(BDockerError) {
        let json: Data
        do {
            json = try JSONEncoder().encode(request)
        } catch {
            throw .internalFault("cannot encode the request: \(error)")
        }
        push(StreamFrames.encode(.request, Array(json)), fromStdin: false)
        if let terminal {
            pushSize(of: terminal)
            signal(SIGWINCH, SIG_IGN)  // the source receives it instead
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            source.setEventHandler { [weak self] in self?.pushSize(of: terminal) }
            source.resume()
            windowChanges = source
        }
        if readStdin {
            Thread { [self] in readStdinUntilEOF() }.start()
        }
    }

    private func pushSize(of fd: Int32) {
        guard let size = TerminalWindow.size(of: fd), let json = try? JSONEncoder().encode(size) else { return }
        push(StreamFrames.encode(.resize, Array(json)), fromStdin: false)
    }

    private func readStdinUntilEOF() {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = read(STDIN_FILENO, &buffer, buffer.count)
            if n > 0 {
                push(StreamFrames.encode(.stdin, Array(buffer[0..<n])), fromStdin: true)
                taken.wait()
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                // EOF (or an unreadable stdin, which docker also takes as its end).
                finish()
                return
            }
        }
    }

    private func push(_ bytes: [UInt8], fromStdin: Bool) {
        let frame = bytes
        lock.lock()
        if ended {
            lock.unlock()
            if fromStdin { taken.signal() }
            return
        }
        if let waiter {
            self.waiter = nil
            lock.unlock()
            if fromStdin { taken.signal() }
            waiter.resume(returning: frame)
        } else {
            queue.append((frame, fromStdin))
            lock.unlock()
        }
    }

    private func finish() {
        lock.lock()
        ended = true
        let waiter = queue.isEmpty ? self.waiter : nil
        if waiter != nil { self.waiter = nil }
        lock.unlock()
        waiter?.resume(returning: nil)
    }

    /// The next frame to send; nil once stdin ended and everything before was sent.
    func next() async -> [UInt8]? {
        await withCheckedContinuation { (c: CheckedContinuation<[UInt8]?, Never>) in
            lock.lock()
            if !queue.isEmpty {
                let (frame, fromStdin) = queue.removeFirst()
                lock.unlock()
                if fromStdin { taken.signal() }
                c.resume(returning: frame)
            } else if ended {
                lock.unlock()
                c.resume(returning: nil)
            } else {
                waiter = c
                lock.unlock()
            }
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let frames: AttachFrames
        mutating func next() async -> [UInt8]? { await frames.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(frames: self) }
}

/// The size of a terminal window.
enum TerminalWindow {
    static func size(of fd: Int32) -> TerminalSize? {
        var window = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &window) == 0, window.ws_row > 0, window.ws_col > 0 else { return nil }
        return TerminalSize(height: Int(window.ws_row), width: Int(window.ws_col))
    }
}

/// The client's terminal in raw mode while `run -it` is attached, so every key (Ctrl-C, Ctrl-D,
/// arrows) goes to the container's terminal as it is. Restored at exit, whatever the path: a
/// normal end, an error (`exit` runs the atexit handler) or a signal (`SignalProxy` restores
/// it before the process dies of one).
enum RawTerminal {
    private final class Saved: @unchecked Sendable {
        // @unchecked: `value` is touched under `lock` only.
        let lock = NSLock()
        var value: (fd: Int32, settings: termios)?
        var atExitInstalled = false
    }

    private static let saved = Saved()

    /// Puts `fd`'s terminal in raw mode; false if it is not a terminal or refused.
    static func enable(_ fd: Int32) -> Bool {
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return false }
        var raw = original
        cfmakeraw(&raw)
        saved.lock.lock()
        saved.value = (fd, original)
        let install = !saved.atExitInstalled
        saved.atExitInstalled = true
        saved.lock.unlock()
        if install { atexit { RawTerminal.restore() } }
        return tcsetattr(fd, TCSANOW, &raw) == 0
    }

    /// Puts the terminal back as it was; does nothing when it is not in raw mode.
    static func restore() {
        saved.lock.lock()
        let value = saved.value
        saved.value = nil
        saved.lock.unlock()
        guard let value else { return }
        var settings = value.settings
        tcsetattr(value.fd, TCSANOW, &settings)
    }
}
