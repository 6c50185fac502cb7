import Foundation

/// Frames over a TLS stream: sizes checked before allocation, whole frames written atomically.
///
/// One thread may receive while others send; sends are serialised so frames never interleave.
final class FrameStream: @unchecked Sendable {
    let tls: TLSStream
    /// The largest payload this side accepts.
    let maxIncomingPayload: Int
    /// The largest payload the peer accepts (from its hello or welcome; ours until then).
    var maxOutgoingPayload: Int
    /// Deadline for each wait of a read or write that has started (progress, not total time).
    let ioTimeout: TimeInterval
    private let writeLock = NSLock()
    /// Payloads up to this size are copied behind their header and written in one piece.
    static let coalesceLimit = 16 << 10
    private let stateLock = NSLock()
    private var lastSendTime = Date()

    init(tls: TLSStream, maxIncomingPayload: Int, ioTimeout: TimeInterval) {
        self.tls = tls
        self.maxIncomingPayload = maxIncomingPayload
        maxOutgoingPayload = maxIncomingPayload
        self.ioTimeout = ioTimeout
    }

    var peerAddress: String { tls.socket.peerAddress }

    /// When the last frame was sent.
    var lastSent: Date {
        stateLock.lock(); defer { stateLock.unlock() }
        return lastSendTime
    }

    /// Sends one frame. Refuses, without sending, a payload above the peer's limit.
    func send(_ frame: Frame) throws {
        guard frame.payload.count <= min(maxOutgoingPayload, Int(UInt32.max)) else {
            throw ChannelError(.frameTooLarge, "a \(frame.type) frame of \(frame.payload.count) bytes exceeds the \(maxOutgoingPayload)-byte limit of \(peerAddress); send it in smaller pieces")
        }
        writeLock.lock()
        defer { writeLock.unlock() }
        if frame.payload.count <= FrameStream.coalesceLimit {
            // One TLS record for a small frame instead of one for its header and one for its payload.
            try (frame.header + frame.payload).withUnsafeBytes { try tls.write($0, timeout: ioTimeout) }
        } else {
            try frame.header.withUnsafeBytes { try tls.write($0, timeout: ioTimeout) }
            try frame.payload.withUnsafeBytes { try tls.write($0, timeout: ioTimeout) }
        }
        stateLock.lock()
        lastSendTime = Date()
        stateLock.unlock()
    }

    /// Receives one frame, waiting at most `firstByteTimeout` for it to start (nil: the I/O
    /// timeout) and then `ioTimeout` for each further piece.
    /// - Throws: `.frameTooLarge` as soon as the header announces a payload above the limit,
    ///   before reading or allocating it; `.protocolViolation` for an unknown type.
    func receive(firstByteTimeout: TimeInterval? = nil) throws -> Frame {
        var header = [UInt8](repeating: 0, count: Frame.headerSize)
        let waitForStart = firstByteTimeout ?? ioTimeout
        guard try tls.waitReadable(until: Date().addingTimeInterval(waitForStart)) else {
            throw ChannelError(.timeout, "\(peerAddress) sent nothing for \(waitForStart) s")
        }
        try header.withUnsafeMutableBytes { try tls.readExactly(into: $0, timeout: ioTimeout) }
        let length = Int(BigEndian.uint32(header, at: 0))
        let job = BigEndian.uint32(header, at: 5)
        guard length <= maxIncomingPayload else {
            throw ChannelError(.frameTooLarge, "\(peerAddress) announced a frame of \(length) bytes (type \(header[4]), job \(job)), above this side's limit of \(maxIncomingPayload) bytes; nothing was allocated and the session is closed")
        }
        guard let type = FrameType(rawValue: header[4]) else {
            throw ChannelError(.protocolViolation, "\(peerAddress) sent a frame of unknown type \(header[4]); is it a dpm agent channel peer of the same protocol version?")
        }
        var payload = [UInt8](repeating: 0, count: length)
        if length > 0 { try payload.withUnsafeMutableBytes { try tls.readExactly(into: $0, timeout: ioTimeout) } }
        return Frame(type, job: job, payload: payload)
    }
}
