import Foundation

/// One job inside a session: a request and whatever frames follow it, in both directions.
///
/// Either side can cancel a job at any time. Cancellation is final for both sides: every later
/// `send` and `receive` on the job throws `.cancelled` with the reason, and the `onCancel`
/// handlers run once (on the session's reader thread for a cancel from the peer, so they must
/// not block: raise a flag, signal a subprocess).
///
/// A job's state lives under its session's lock; its methods may be called from any thread.
public final class ChannelJob: @unchecked Sendable {
    public let id: UInt32
    public let session: ChannelSession

    // Guarded by the session's lock.
    var inbox: [Frame] = []
    var queuedBytes = 0
    var cancellation: String?
    var remoteError: ChannelError?
    var peerEnded = false
    private var cancelHandlers: [(String) -> Void] = []
    private var closedLocally = false

    init(id: UInt32, session: ChannelSession) {
        self.id = id
        self.session = session
    }

    /// Why the job was cancelled (by either side); nil while it is not.
    public var cancellationReason: String? { session.withJobState { cancellation } }
    public var isCancelled: Bool { cancellationReason != nil }

    /// Sends one frame on this job.
    public func send(_ type: FrameType, _ payload: [UInt8] = []) throws {
        if let error = session.withJobState({ () -> ChannelError? in
            if let cancellation { return cancelledError(cancellation) }
            if closedLocally { return ChannelError(.closed, "job \(id) with \(session.peerDescription) is closed on this side") }
            return nil
        }) { throw error }
        try session.send(Frame(type, job: id, payload: payload))
    }

    /// Sends one frame whose payload is `value` as JSON.
    public func send<T: Encodable>(_ type: FrameType, json value: T) throws {
        try send(type, try WireJSON.encode(value))
    }

    /// Waits for the next frame of this job (nil timeout: until one comes, the job is
    /// cancelled or fails, or the session ends; the keep-alive bounds how long a dead peer can
    /// keep it waiting).
    /// - Throws: `.cancelled`; the peer's error (with `remote` set) when it sent an error frame;
    ///   `.closed` after the peer's `end` frame has been returned; the session's failure.
    public func receive(timeout: TimeInterval? = nil) throws -> Frame {
        try session.nextFrame(for: self, timeout: timeout)
    }

    /// Receives the next frame and checks its type.
    public func receive(_ expected: FrameType, timeout: TimeInterval? = nil) throws -> Frame {
        let frame = try receive(timeout: timeout)
        guard frame.type == expected else {
            throw ChannelError(.protocolViolation, "\(session.peerDescription) sent a \(frame.type) frame on job \(id) where a \(expected) frame belongs")
        }
        return frame
    }

    /// Cancels the job on both sides.
    public func cancel(reason: String) {
        let (first, handlers) = session.withJobState { () -> (Bool, [(String) -> Void]) in
            guard cancellation == nil, !closedLocally else { return (false, []) }
            return (true, markCancelled("by this side: \(reason)"))
        }
        guard first else { return }
        try? session.send(Frame(.cancel, job: id, payload: (try? WireJSON.encode(WireReason(reason: reason))) ?? []))
        session.forget(self)
        for handler in handlers { handler(reason) }
    }

    /// Runs `handler` once when the job is cancelled by either side (at once if it already is).
    public func onCancel(_ handler: @escaping (String) -> Void) {
        let already = session.withJobState { () -> String? in
            if cancellation == nil { cancelHandlers.append(handler) }
            return cancellation
        }
        if let already { handler(already) }
    }

    /// Fails the job: the peer receives `error` (code and message) and the job is closed.
    public func fail(_ error: ChannelError) {
        try? send(.error, json: WireError(error))
        close()
    }

    /// Sends an `end` frame: this side has finished with the job and sends nothing more.
    public func end() throws {
        try send(.end)
        close()
    }

    /// The error every call on a cancelled job throws; `reason` says by whom and why.
    func cancelledError(_ reason: String) -> ChannelError {
        ChannelError(.cancelled, "job \(id) with \(session.peerDescription) was cancelled \(reason)")
    }

    /// Records a cancellation and returns the handlers to run; empty when it was cancelled already.
    /// Call under the session's lock.
    func markCancelled(_ reason: String) -> [(String) -> Void] {
        guard cancellation == nil else { return [] }
        cancellation = reason
        let handlers = cancelHandlers
        cancelHandlers = []
        return handlers
    }

    private func close() {
        session.withJobState { closedLocally = true }
        session.forget(self)
    }
}
