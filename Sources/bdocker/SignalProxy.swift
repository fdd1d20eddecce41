import BDClient
import BDCore
import Dispatch
import Foundation

/// `run`'s signal proxy, as docker's `--sig-proxy`: the signals a user or the batch system
/// sends to an attached `bdocker run` (Ctrl-C, qdel's TERM) go to the container, whose exit
/// then ends the run with its own exit code. Before the container exists a signal ends the
/// client as it normally would. With `forwarding` off (`--sig-proxy=false` on a raw terminal)
/// every signal ends the client as it normally would, only after the terminal is restored.
final class SignalProxy: @unchecked Sendable {
    // @unchecked: `container` is only touched under `lock`; the sources live as long as the proxy.
    static let forwarded: [(Int32, String)] = [(SIGINT, "INT"), (SIGTERM, "TERM"), (SIGHUP, "HUP"), (SIGQUIT, "QUIT"),
                                               (SIGUSR1, "USR1"), (SIGUSR2, "USR2")]
    private let lock = NSLock()
    private var container: String?
    private var sources: [DispatchSourceSignal] = []

    init(client: DaemonClient, token: String, forwarding: Bool = true) {
        for (number, name) in Self.forwarded {
            signal(number, SIG_IGN)  // the source receives it instead of the default action
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard forwarding, let id = self?.containerID else {
                    // No container yet: die of the signal, as without the proxy (a raw
                    // terminal put back first: nothing else would).
                    RawTerminal.restore()
                    Self.die(of: number)
                }
                Task {
                    do {
                        let _: String = try await client.call(.PUT, "/kill", body: KillRequest(token: token, containerID: id, signal: name))
                    } catch {
                        FileHandle.standardError.write(Data("bdocker: forwarding SIG\(name) to \(id.prefix(12)) failed: \((error as? BDockerError)?.message ?? "\(error)")\n".utf8))
                    }
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Ends the process by `number`'s default action. libdispatch receives signals with them
    /// blocked, so this thread unblocks it before raising it; should it still be alive, it
    /// exits as a shell reports a death by that signal.
    static func die(of number: Int32) -> Never {
        signal(number, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(number)
        _exit(128 + number)
    }

    private var containerID: String? {
        lock.lock()
        defer { lock.unlock() }
        return container
    }

    func forward(to id: String) {
        lock.lock()
        container = id
        lock.unlock()
    }
}
