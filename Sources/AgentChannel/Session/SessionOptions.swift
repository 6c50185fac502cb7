import Foundation

/// Limits and timers of one channel session; both sides choose their own.
public struct SessionOptions: Sendable {
    /// Deadline for the TCP connect, the TLS handshake and the hello round trip.
    public var handshakeTimeout: TimeInterval = 30
    /// Progress deadline of every read or write once a frame has started.
    public var ioTimeout: TimeInterval = 60
    /// A side that has sent nothing for this long sends a ping.
    public var keepAliveInterval: TimeInterval = 10
    /// A peer from which nothing (not even a ping or pong) arrived for this long is declared
    /// gone and the session fails with `.peerGone`.
    public var keepAliveTimeout: TimeInterval = 45
    /// The largest frame payload this side accepts; announced to the peer, which must not send
    /// more. Must hold the largest chunk (4 MiB) plus its 32-byte digest.
    public var maxFramePayload: Int = 8 << 20
    /// Bytes that may wait, unread by the application, on one job before the session fails:
    /// a peer cannot fill this side's memory by sending where nobody reads.
    public var maxQueuedBytesPerJob: Int = 256 << 20

    public init() {}
}

/// Which end of dpm's relationship a side is; decides job-id parity and messages, never the
/// TLS role or who dialed.
public enum ChannelRole: String, Sendable {
    /// The dpm server, which enrolls agents and owns the store.
    case server
    /// A remote agent: the guest agent or a host agent.
    case agent
}
