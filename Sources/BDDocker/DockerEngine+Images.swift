import BDCore
import Foundation
import NIOCore

extension DockerEngine {
    /// Pulls `reference` ("repo", "repo:tag", "host:port/repo:tag", "repo@sha256:…"; the tag
    /// defaults to latest), passing each progress line to `progress`. A missing image or tag is
    /// `.notFound`, an unreachable registry `.unavailable`, also when the engine reports them
    /// in the middle of the stream. The download itself has no time limit.
    public func pull(_ reference: String,
                     progress: @Sendable (PullProgress) async throws(BDockerError) -> Void = { _ in }) async throws(BDockerError) {
        let image = try ImageReference(reference)
        let path = "/images/create"
        // The engine sends the head only after it has reached the registry.
        let response = try await open(.POST, path, query: image.query, headTimeout: timeout) { status, message in
            PullFailure.error(reference: reference, message: message, status: status)
        }
        var lines = LineSplitter()
        try await BDockerError.mapping({ lostConnection($0, reading: path) }) {
            for try await chunk in response.body {
                for line in lines.feed(chunk) {
                    try await report(line, of: reference, to: progress)
                }
            }
        }
        if let last = lines.finish() { try await report(last, of: reference, to: progress) }
    }

    private func report(_ line: ByteBuffer, of reference: String,
                        to progress: @Sendable (PullProgress) async throws(BDockerError) -> Void) async throws(BDockerError) {
        guard line.readableBytes > 0 else { return }
        guard let message = try? JSONDecoder().decode(PullMessage.self, from: line) else {
            logger.debug("ignoring a pull line that is not JSON: \(String(buffer: line).prefix(200))")
            return
        }
        if let error = message.error {
            throw PullFailure.error(reference: reference, message: error)
        }
        if let line = message.asProgress { try await progress(line) }
    }

    /// Whether the engine has `reference` locally (so a run need not pull).
    public func imageExists(_ reference: String) async throws(BDockerError) -> Bool {
        do {
            _ = try await call(.GET, "/images/\(Self.escapeImage(reference))/json")
            return true
        } catch .notFound {
            return false
        }
    }

    /// What the engine knows of a local image: nil when it has none.
    public func imageSummary(_ reference: String) async throws(BDockerError) -> ImageSummary? {
        struct Inspected: Decodable { var Id: String; var Created: String?; var Size: Int64? }
        do {
            let i = try await call(.GET, "/images/\(Self.escapeImage(reference))/json").decoded(Inspected.self, what: "image inspect")
            return ImageSummary(id: i.Id, created: i.Created ?? "", size: i.Size ?? 0)
        } catch .notFound {
            return nil
        }
    }

    /// Removes the local image `reference` (untags it when other tags share it). An image a
    /// container still uses is a `.conflict` unless `force`.
    public func removeImage(_ reference: String, force: Bool = false) async throws(BDockerError) {
        _ = try await call(.DELETE, "/images/\(Self.escapeImage(reference))", query: [("force", force ? "1" : "0")])
    }

    /// References go into the path whole: the engine's route takes "/" and ":" in the name.
    private static func escapeImage(_ reference: String) -> String {
        reference.split(separator: "/", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "/")
    }
}

public struct ImageSummary: Sendable, Equatable {
    public var id: String
    /// RFC 3339, as the engine writes it.
    public var created: String
    public var size: Int64
}
