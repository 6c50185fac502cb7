import Foundation

/// An authenticated channel between the dpm server and one agent, carrying any number of
/// concurrent jobs.
///
/// Made by `ServerHandshake` or `AgentHandshake` once both keys are checked. From then on:
/// - a reader thread routes every incoming frame to its job, answers pings and notices a peer
///   gone silent (nothing received for `keepAliveTimeout`);
/// - a keep-alive thread sends a ping whenever this side has sent nothing for
///   `keepAliveInterval`, and the pongs the reader owes;
/// - any transport failure, an error frame on job 0, a goodbye or `close` ends the session:
///   `failure` says why, and every waiting or later call on the session or its jobs throws it.
///
/// Call `close` when done: the threads keep a session alive until it has ended.
public final class ChannelSession: @unchecked Sendable {
    public let role: ChannelRole
    /// This side's name (server name or agent name) and the peer's, as the handshake checked them.
    public let localName: String
    public let peerName: String
    public let localPin: KeyPin
    public let peerPin: KeyPin
    public let options: SessionOptions
    let stream: FrameStream

    private let condition = NSCondition()
    private var jobs: [UInt32: ChannelJob] = [:]
    private var openedByPeer: [ChannelJob] = []
    private var nextJobID: UInt32
    private var highestPeerJob: UInt32 = 0
    private var failureError: ChannelError?
    private var lastReceive = Date()
    private var pongsOwed: [[UInt8]] = []
    private var pingsSent: UInt64 = 0
    private var threads: [Thread] = []
    private let threadsDone = DispatchGroup()

    init(stream: FrameStream, role: ChannelRole, localName: String, peerName: String, options: SessionOptions) {
        self.stream = stream
        self.role = role
        self.localName = localName
        self.peerName = peerName
        localPin = stream.tls.localPin
        peerPin = stream.tls.peerPin
        self.options = options
        nextJobID = role == .server ? 1 : 2
        start("reader") { $0.readFrames() }
        start("keep-alive") { $0.keepAlive() }
    }

    /// The peer as "agent db01 (127.0.0.1:40312)", for messages.
    public var peerDescription: String {
        "\(role == .server ? "agent" : "server") \(peerName) (\(peerAddress))"
    }

    public var peerAddress: String { stream.peerAddress }

    /// Why the session ended; nil while it is open.
    public var failure: ChannelError? {
        condition.lock(); defer { condition.unlock() }
        return failureError
    }

    public var isOpen: Bool { failure == nil }

    /// Application bytes (frames, headers included) sent and received inside TLS.
    public var bytesSent: Int { stream.tls.bytesWritten }
    public var bytesReceived: Int { stream.tls.bytesRead }

    /// Opens a job with a JSON request as its first frame.
    public func openJob<T: Encodable>(request: T) throws -> ChannelJob {
        condition.lock()
        if let failureError {
            condition.unlock()
            throw failureError
        }
        let job = ChannelJob(id: nextJobID, session: self)
        nextJobID &+= 2
        jobs[job.id] = job
        condition.unlock()
        try job.send(.request, json: request)
        return job
    }

    /// Waits for the peer to open a job and returns it with its first frame (a request).
    public func acceptJob(timeout: TimeInterval? = nil) throws -> (job: ChannelJob, request: Frame) {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        condition.lock()
        defer { condition.unlock() }
        while openedByPeer.isEmpty {
            if let failureError { throw failureError }
            if !waitForChange(until: deadline) && openedByPeer.isEmpty {
                throw ChannelError(.timeout, "\(peerDescription) opened no job within \(timeout ?? 0) s")
            }
        }
        let job = openedByPeer.removeFirst()
        let request = job.inbox.removeFirst()
        job.queuedBytes -= request.payload.count
        return (job, request)
    }

    /// Ends the session in order: a goodbye frame, TLS close_notify, then the socket is shut.
    /// Waits for the session's threads unless called from one of them (a cancel handler).
    public func close(reason: String = "closed by \(ProcessInfo.processInfo.processName)") {
        if isOpen { try? stream.send(try Frame(.goodbye, json: WireReason(reason: reason))) }
        fail(ChannelError(.closed, "this side closed the session with \(peerDescription): \(reason)"), notifyPeer: false)
        stream.tls.closeNotify()
        stream.tls.socket.shutdown()
        if !threads.contains(where: { $0 === Thread.current }) {
            _ = threadsDone.wait(timeout: .now() + options.ioTimeout)
        }
    }

    // MARK: - Used by jobs

    func send(_ frame: Frame) throws {
        if let failure { throw failure }
        do {
            try stream.send(frame)
        } catch let error as ChannelError where error.code == .frameTooLarge {
            throw error  // refused before anything was written: the session is intact
        } catch {
            let reason = cut(error as? ChannelError ?? ChannelError(.io, "sending to \(peerDescription) failed", cause: error))
            fail(reason, notifyPeer: false)
            throw failure ?? reason
        }
    }

    /// Waits for the next frame routed to `job`.
    func nextFrame(for job: ChannelJob, timeout: TimeInterval?) throws -> Frame {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let reason = job.cancellation { throw job.cancelledError(reason) }
            if let remote = job.remoteError { throw remote }
            if !job.inbox.isEmpty {
                let frame = job.inbox.removeFirst()
                job.queuedBytes -= frame.payload.count
                return frame
            }
            if let failureError { throw failureError }
            if job.peerEnded { throw ChannelError(.closed, "\(peerDescription) has ended job \(job.id)") }
            if !waitForChange(until: deadline) && job.inbox.isEmpty {
                throw ChannelError(.timeout, "\(peerDescription) sent nothing on job \(job.id) for \(timeout ?? 0) s")
            }
        }
    }

    /// Waits on the session's condition (held) until a change or `deadline` (nil: no deadline;
    /// NSCondition traps on Date.distantFuture). False when the deadline passed.
    private func waitForChange(until deadline: Date?) -> Bool {
        guard let deadline else {
            condition.wait()
            return true
        }
        return condition.wait(until: deadline)
    }

    /// Runs `body` on the job's state under the session lock.
    func withJobState<R>(_ body: () -> R) -> R {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return body()
    }

    /// Stops routing frames to `job` (it was cancelled, failed or ended).
    func forget(_ job: ChannelJob) {
        condition.lock()
        jobs[job.id] = nil
        condition.unlock()
    }

    // MARK: - Threads

    private func start(_ name: String, _ body: @escaping (ChannelSession) -> Void) {
        threadsDone.enter()
        let thread = Thread { [self] in
            body(self)
            threadsDone.leave()
        }
        thread.name = "dpm channel \(name) \(peerName)"
        threads.append(thread)
        thread.start()
    }

    private func readFrames() {
        while isOpen {
            do {
                condition.lock()
                let silentSince = lastReceive
                condition.unlock()
                guard try stream.tls.waitReadable(until: silentSince.addingTimeInterval(options.keepAliveTimeout)) else {
                    fail(ChannelError(.peerGone, "\(peerDescription) has sent nothing, not even a keep-alive, for \(options.keepAliveTimeout) s: it is gone (crashed, hung, or the network dropped). The session is closed; the job must be run again."), notifyPeer: false)
                    return
                }
                if !isOpen { return }
                let frame = try stream.receive()
                condition.lock()
                lastReceive = Date()
                condition.unlock()
                try route(frame)
            } catch let error as ChannelError {
                let notify = [.frameTooLarge, .protocolViolation].contains(error.code)
                fail(cut(error), notifyPeer: notify)
                return
            } catch {
                fail(ChannelError(.internalError, "reading from \(peerDescription) failed", cause: error), notifyPeer: true)
                return
            }
        }
    }

    /// A broken or stalled connection, said as such and naming the peer.
    private func cut(_ error: ChannelError) -> ChannelError {
        guard error.code == .connectionLost || error.code == .timeout else { return error }
        return ChannelError(error.code, "the session with \(peerDescription) was cut: \(error.message)")
    }

    private func route(_ frame: Frame) throws {
        if frame.job == 0 {
            switch frame.type {
            case .ping:
                condition.lock()
                pongsOwed.append(frame.payload)
                condition.broadcast()
                condition.unlock()
            case .pong:
                break
            case .error:
                let wire = try frame.decode(WireError.self)
                fail(wire.channelError(prefix: "\(peerDescription) ended the session: "), notifyPeer: false)
            case .goodbye:
                let reason = (try? frame.decode(WireReason.self).reason) ?? "no reason given"
                fail(ChannelError(.closed, "\(peerDescription) closed the session: \(reason)"), notifyPeer: false)
            default:
                throw ChannelError(.protocolViolation, "\(peerDescription) sent a \(frame.type) frame on the session after the handshake")
            }
            return
        }
        guard frame.type != .ping, frame.type != .pong, frame.type != .hello, frame.type != .welcome, frame.type != .goodbye else {
            throw ChannelError(.protocolViolation, "\(peerDescription) sent a \(frame.type) frame on job \(frame.job); it belongs to job 0")
        }
        var handlers: [(String) -> Void] = []
        var reason = ""
        condition.lock()
        defer { condition.unlock() }
        var job = jobs[frame.job]
        if job == nil {
            let peerParity: UInt32 = role == .server ? 0 : 1
            // Frames for a job this side has closed, or the peer's late frames after a cancel: dropped.
            guard frame.job % 2 == peerParity, frame.job > highestPeerJob else { return }
            guard frame.type == .request else {
                throw ChannelError(.protocolViolation, "\(peerDescription) opened job \(frame.job) with a \(frame.type) frame instead of a request")
            }
            let opened = ChannelJob(id: frame.job, session: self)
            highestPeerJob = frame.job
            jobs[frame.job] = opened
            openedByPeer.append(opened)
            job = opened
        }
        guard let job else { return }
        switch frame.type {
        case .cancel:
            reason = (try? frame.decode(WireReason.self).reason) ?? "no reason given"
            handlers = job.markCancelled("by the \(role == .server ? "agent" : "server"): \(reason)")
            jobs[frame.job] = nil
        case .error:
            let wire = try frame.decode(WireError.self)
            job.remoteError = wire.channelError(prefix: "\(peerDescription), job \(frame.job): ")
            jobs[frame.job] = nil
        case .end:
            job.inbox.append(frame)
            job.peerEnded = true
            jobs[frame.job] = nil
        default:
            job.inbox.append(frame)
            job.queuedBytes += frame.payload.count
            if job.queuedBytes > options.maxQueuedBytesPerJob {
                throw ChannelError(.protocolViolation, "\(peerDescription) queued more than \(options.maxQueuedBytesPerJob) unread bytes on job \(frame.job); the session is closed to protect this side's memory")
            }
        }
        condition.broadcast()
        if !handlers.isEmpty {
            condition.unlock()
            let message = job.cancellation ?? reason
            for handler in handlers { handler(message) }
            condition.lock()
        }
    }

    private func keepAlive() {
        while true {
            condition.lock()
            while failureError == nil && pongsOwed.isEmpty
                    && Date() < stream.lastSent.addingTimeInterval(options.keepAliveInterval) {
                _ = condition.wait(until: stream.lastSent.addingTimeInterval(options.keepAliveInterval))
            }
            if failureError != nil {
                condition.unlock()
                return
            }
            let pongs = pongsOwed
            pongsOwed = []
            let pingDue = Date() >= stream.lastSent.addingTimeInterval(options.keepAliveInterval)
            pingsSent += pingDue ? 1 : 0
            let count = pingsSent
            condition.unlock()
            do {
                for payload in pongs { try send(Frame(.pong, payload: payload)) }
                if pingDue { try send(Frame(.ping, payload: withUnsafeBytes(of: count.bigEndian) { Array($0) })) }
            } catch {
                return  // send() has ended the session with the reason
            }
        }
    }

    /// Ends the session with `error` (the first reason wins) and wakes every waiter. With
    /// `notifyPeer`, the peer first gets an error frame naming the reason.
    func fail(_ error: ChannelError, notifyPeer: Bool) {
        condition.lock()
        let first = failureError == nil
        if first { failureError = error }
        condition.broadcast()
        condition.unlock()
        guard first else { return }
        if notifyPeer, let frame = try? Frame(.error, json: WireError(error)) { try? stream.send(frame) }
        stream.tls.socket.shutdown()
    }
}
