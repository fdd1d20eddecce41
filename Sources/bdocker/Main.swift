import ArgumentParser
import BDClient
import BDCommandLine
import BDConfig
import BDCore
import Foundation

@main
struct BDocker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bdocker",
        abstract: "Run Docker containers inside a batch job, accounted to the job.",
        discussion: """
            configure and clean run as root in the batch system's prolog and epilog; every other \
            command runs inside the job with the job's token.
            """,
        version: BDockerVersion.current,
        subcommands: [Configure.self, Clean.self, Pull.self, Run.self, Ps.self, Logs.self, Inspect.self, Rm.self, Cp.self, Stop.self, Start.self, Exec.self, Images.self, Rmi.self, Kill.self, Wait.self, Info.self, Join.self])

    /// As ArgumentParser's, after moving `-H`/`--config` given before the command behind it
    /// (`bdocker -H unix:///x ps`, as with docker), and with argument errors in one line.
    static func main() async {
        await mainWithOneLineErrors(GlobalOptions.movedAfterCommand(Array(CommandLine.arguments.dropFirst())))
    }
}

/// Options every command takes: where the daemon is and which config file to read.
struct ConnectionOptions: ParsableArguments {
    @Option(name: [.customShort("H"), .long], help: "Daemon endpoint: unix:///PATH (default: [server] socket of the config, else /run/bdocker/bdockerd.sock) or HOST:PORT where the site enabled TCP.")
    var host: String?

    @Option(name: .long, help: "Configuration file (default: $BDOCKER_CONF_FILE, else /etc/configure_bdocker.cfg).")
    var config: String?

    /// The validated settings; admin commands need the whole file.
    func settings() throws(BDockerError) -> Settings {
        let path = SettingsLoader.resolvePath(explicit: config)
        do {
            return try SettingsLoader.load(path: path)
        } catch {
            throw .invalidInput("configuration error: \(error)")
        }
    }

    /// The daemon to talk to: `-H`, else the config's `[server] socket`, else the default
    /// socket when the default config file does not exist on this machine.
    func client(settings: Settings?) throws(BDockerError) -> DaemonClient {
        if let host { return DaemonClient(endpoint: host, timeoutSeconds: settings?.server.timeout ?? 500) }
        if let settings {
            return DaemonClient(endpoint: "unix://" + settings.server.socket, timeoutSeconds: settings.server.timeout)
        }
        return DaemonClient(endpoint: "unix://" + Settings.Server.defaultSocket)
    }
}
