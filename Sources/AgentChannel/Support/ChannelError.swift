import Foundation

/// The one error type of AgentChannel: a code, a message that names the peer, the key and the
/// fix, and the underlying cause when there is one.
///
/// Refusals travel: the side that refuses sends an `error` frame carrying `code.rawValue` and
/// its message, so the other side throws a `ChannelError` with the same code (and `remote`
/// set) instead of a bare "connection closed".
public struct ChannelError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable, CaseIterable {
        // Authentication and enrollment refusals.
        /// An agent name the server has never enrolled.
        case unknownAgent = "unknown-agent"
        /// An agent the server enrolled and later revoked.
        case revokedAgent = "revoked-agent"
        /// An enrolled agent name presenting another key than the one enrolled.
        case agentKeyChanged = "agent-key-changed"
        /// The server presented another key than the one the agent pinned.
        case serverKeyChanged = "server-key-changed"
        /// The peer refused this side's key during the TLS handshake.
        case keyRefusedByPeer = "key-refused-by-peer"
        /// The enrollment code is not one the server issued (a typo, or another server's code).
        case unknownCode = "unknown-code"
        /// The enrollment code was used already (codes are single-use).
        case codeUsed = "code-used"
        case codeExpired = "code-expired"
        /// The enrollment proof does not match the keys seen in the handshake: a man in the middle.
        case manInTheMiddle = "man-in-the-middle"
        /// The agent name is enrolled already, with another key, and was not revoked.
        case nameTaken = "name-taken"

        // Transport and protocol.
        case connectFailed = "connect-failed"
        /// The connection broke (reset, closed without goodbye, socket cut).
        case connectionLost = "connection-lost"
        /// The peer closed the session in order (goodbye).
        case closed
        /// No progress within a read or write deadline.
        case timeout
        /// The keep-alive found the peer silent.
        case peerGone = "peer-gone"
        case frameTooLarge = "frame-too-large"
        case protocolViolation = "protocol-violation"
        case tls
        case cancelled

        // Data.
        /// A chunk whose content does not hash to its digest.
        case corruptChunk = "corrupt-chunk"
        case invalid
        case io
        /// A failure of the application on the other side, reported as an error frame.
        case failed
        case internalError = "internal"
    }

    public var code: Code
    public var message: String
    public var cause: String?
    /// True when the peer reported this error in an error frame.
    public var remote: Bool

    public init(_ code: Code, _ message: String, cause: Error? = nil, remote: Bool = false) {
        self.code = code
        self.message = message
        self.cause = cause.map { String(describing: $0) }
        self.remote = remote
    }

    public var description: String {
        if let cause, !message.contains(cause) { return "\(message) (\(cause))" }
        return message
    }

    /// Wraps an errno from a system call.
    static func posix(_ code: Code, _ what: String, errno number: Int32 = errno) -> ChannelError {
        ChannelError(code, "\(what): \(String(cString: strerror(number)))")
    }
}
