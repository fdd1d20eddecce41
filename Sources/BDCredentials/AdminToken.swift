import BDCore
import Foundation

/// The admin token, read once at start from a file only root may read.
public struct AdminToken: Sendable {
    /// The token itself, for the daemon's own calls to the accounting daemon.
    public let secret: String

    public init(secret: String) throws(BDockerError) {
        guard secret.count >= 16 else {
            throw .invalidInput("the admin token is too short (at least 16 characters; tools/install.sh makes a 64-character one)")
        }
        self.secret = secret
    }

    public func matches(_ presented: String) -> Bool {
        TokenSecret.constantTimeEqual(secret, presented)
    }

    /// Reads and checks the admin token file (see `AdminTokenFile`).
    public static func load(path: String, requireRootOwner: Bool = true) throws(BDockerError) -> AdminToken {
        try AdminToken(secret: AdminTokenFile.read(path: path, requireRootOwner: requireRootOwner))
    }
}
