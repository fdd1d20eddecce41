import BDCore
import Foundation

/// Where the Docker engine listens, translated from the configured `[dockerAPI] base_url`
/// (`unix:///var/run/docker.sock`, `tcp://host:2375`, `http://host:2375`) into what
/// AsyncHTTPClient connects to.
struct EngineEndpoint: Sendable, Equatable {
    /// The URL as configured, for messages the operator recognises.
    let configured: String
    /// Scheme and authority of every request URL, e.g. `http+unix://%2Fvar%2Frun%2Fdocker.sock`.
    let origin: String
    /// dockerd rejects a request without a Host header, and AsyncHTTPClient sends none when
    /// it talks to a unix socket, so those requests carry this one.
    let hostHeader: String?
    /// Where a raw connection goes (the hijacked attach, which AsyncHTTPClient cannot make);
    /// nil for https, which would need TLS that the raw client does not speak.
    let socket: Socket?

    enum Socket: Sendable, Equatable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }

    init(_ baseURL: String) throws(BDockerError) {
        let url = baseURL.trimmingCharacters(in: .whitespaces)
        configured = url
        if let path = url.dropPrefix("unix://") {
            guard path.hasPrefix("/"), path.count > 1 else {
                throw .invalidInput("Docker base URL \(url): a unix socket needs an absolute path, as in unix:///var/run/docker.sock")
            }
            // AsyncHTTPClient takes the socket path as the host, percent-encoded.
            origin = "http+unix://" + DockerEngine.escape(path)
            hostHeader = "docker"
            socket = .unix(path: path)
        } else if let authority = url.dropPrefix("tcp://") ?? url.dropPrefix("http://") {
            let checked = try Self.checkedAuthority(authority, in: url)
            origin = "http://" + checked
            hostHeader = nil
            socket = Self.tcpSocket(checked)
        } else if let authority = url.dropPrefix("https://") {
            origin = "https://" + (try Self.checkedAuthority(authority, in: url))
            hostHeader = nil
            socket = nil
        } else {
            throw .invalidInput("Docker base URL \(url): use unix:///path/to/docker.sock, tcp://host:port or http://host:port")
        }
    }

    /// A checked `host[:port]` as an address; the engine's plain-HTTP port when none is given.
    private static func tcpSocket(_ hostPort: String) -> Socket? {
        guard let parsed = URLComponents(string: "http://" + hostPort), var host = parsed.host else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host, port: parsed.port ?? 2375)
    }

    /// `host[:port]` with at most a trailing slash: the engine's API paths are fixed, so a
    /// path or query in the base URL is a configuration mistake worth reporting.
    private static func checkedAuthority(_ authority: String, in url: String) throws(BDockerError) -> String {
        var hostPort = authority
        if hostPort.hasSuffix("/") { hostPort.removeLast() }
        guard !hostPort.isEmpty, !hostPort.contains(where: { "/?#@ ".contains($0) }),
              let parsed = URLComponents(string: "http://" + hostPort), let host = parsed.host, !host.isEmpty
        else {
            throw .invalidInput("Docker base URL \(url): expected host:port with no path")
        }
        return hostPort
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
