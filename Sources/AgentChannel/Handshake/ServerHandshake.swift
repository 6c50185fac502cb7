import Digests
import Foundation

/// The dpm server's side of admitting an agent on a connected socket, whichever side dialed.
///
/// 1. TLS 1.3 in the caller's `tlsRole`, accepting any client key (`PeerKeys.any`) so that
///    an unknown, revoked or changed key gets a message saying so instead of a bare TLS alert;
///    nothing the agent sends is acted on before step 3 decides.
/// 2. The agent's `hello`: protocol, version, service (this port's kind of agent), name, and
///    an enrollment claim when it enrolls.
/// 3. The decision, against the registry:
///    - pinned: the name must be enrolled, not revoked, with exactly the key seen in TLS;
///    - enrolling: the code must be known, unused and unexpired (it is spent by this attempt,
///      whatever follows), the name free or held by the same key or revoked, and the agent's
///      proof must match the keys this side saw; then the agent is saved with that key.
/// 4. `welcome` (with the server's own proof when enrolling), or an `error` frame carrying
///    the refusal and the connection is closed; the same refusal is thrown here.
public final class ServerHandshake: @unchecked Sendable {
    public let identity: ChannelIdentity
    public let service: String
    public let registry: AgentRegistry
    public var options: SessionOptions
    public var remedies: Remedies
    /// The time codes are checked against and records stamped with.
    public var clock: @Sendable () -> Date = { Date() }

    /// An agent admitted into a session.
    public struct Admission: Sendable {
        public let session: ChannelSession
        public let agent: EnrolledAgent
        /// True when this connection enrolled the agent.
        public let enrolledNow: Bool
    }

    public init(identity: ChannelIdentity, service: String, registry: AgentRegistry,
                options: SessionOptions = SessionOptions(), remedies: Remedies = .guestAgent) {
        self.identity = identity
        self.service = service
        self.registry = registry
        self.options = options
        self.remedies = remedies
    }

    public var serverName: String { identity.name }

    /// Admits the agent on `socket` or refuses it (on both sides) with a `ChannelError`.
    public func admit(_ socket: TCPSocket, tlsRole: TLSRole) throws -> Admission {
        let refusal = Refusal(remedies: remedies)
        let tls: TLSStream
        do {
            tls = try TLSStream.handshake(over: socket, identity: identity, role: tlsRole, peerKeys: .any, timeout: options.handshakeTimeout)
        } catch let error as ChannelError where error.code == .keyRefusedByPeer {
            throw refusal.serverKeyRefused(by: socket.peerAddress, serverPin: identity.pin, server: serverName)
        }
        let frames = FrameStream(tls: tls, maxIncomingPayload: options.maxFramePayload, ioTimeout: options.ioTimeout)
        let hello: AgentHello
        do {
            hello = try readHello(frames)
        } catch let error as ChannelError where error.code == .keyRefusedByPeer {
            // The agent is the TLS server and refused this server's key at the end of its handshake.
            throw refusal.serverKeyRefused(by: socket.peerAddress, serverPin: identity.pin, server: serverName)
        } catch let error as ChannelError {
            refuse(frames, error, proof: nil)
            throw error
        }
        frames.maxOutgoingPayload = hello.maxFrame
        let decision = decide(hello, agentPin: tls.peerPin, refusal: refusal)
        switch decision {
        case let .refused(error, proof):
            refuse(frames, error, proof: proof)
            throw error
        case let .admitted(agent, proof):
            let welcome = ServerWelcome(server: serverName, agent: agent.name, maxFrame: options.maxFramePayload,
                                        enrolled: proof != nil, enrollmentProof: proof)
            try frames.send(try Frame(.welcome, json: welcome))
            let session = ChannelSession(stream: frames, role: .server, localName: serverName, peerName: agent.name, options: options)
            return Admission(session: session, agent: agent, enrolledNow: proof != nil)
        }
    }

    private enum Decision {
        case admitted(EnrolledAgent, proof: String?)
        case refused(ChannelError, proof: String?)
    }

    private func readHello(_ frames: FrameStream) throws -> AgentHello {
        let frame = try frames.receive(firstByteTimeout: options.handshakeTimeout)
        guard frame.type == .hello, frame.job == 0 else {
            throw ChannelError(.protocolViolation, "\(frames.peerAddress) sent a \(frame.type) frame where the agent's hello belongs; is it a dpm agent?")
        }
        let hello = try frame.decode(AgentHello.self)
        guard hello.protocol == AgentHello.protocolName, hello.version == AgentHello.currentVersion else {
            throw ChannelError(.protocolViolation, "\(frames.peerAddress) speaks \(hello.protocol) version \(hello.version); server \(serverName) speaks \(AgentHello.protocolName) version \(AgentHello.currentVersion): upgrade the older of the two")
        }
        guard hello.service == service else {
            throw ChannelError(.protocolViolation, "\(hello.service) \(hello.agent) at \(frames.peerAddress) connected to the \(service) port of server \(serverName): point it at the \(hello.service) port")
        }
        guard !hello.agent.isEmpty, hello.agent.utf8.count <= 64, !hello.agent.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw ChannelError(.protocolViolation, "\(frames.peerAddress) sent an agent name that is empty, longer than 64 bytes or holds control characters")
        }
        guard hello.maxFrame >= 64 << 10 else {
            throw ChannelError(.protocolViolation, "agent \(hello.agent) accepts frames of only \(hello.maxFrame) bytes; at least 65536 are needed")
        }
        return hello
    }

    private func decide(_ hello: AgentHello, agentPin: KeyPin, refusal: Refusal) -> Decision {
        do {
            if let claim = hello.enroll { return try enroll(hello.agent, claim: claim, agentPin: agentPin, refusal: refusal) }
            guard let agent = try registry.agent(named: hello.agent) else {
                let other = try registry.agents().first { $0.pin == agentPin && $0.revokedAt == nil }
                return .refused(refusal.unknownAgent(hello.agent, pin: agentPin, server: serverName, enrolledAs: other?.name), proof: nil)
            }
            if agent.revokedAt != nil { return .refused(refusal.revokedAgent(agent, seen: agentPin, server: serverName), proof: nil) }
            if agent.pin != agentPin { return .refused(refusal.agentKeyChanged(agent, seen: agentPin, server: serverName), proof: nil) }
            return .admitted(agent, proof: nil)
        } catch {
            let failure = error as? ChannelError ?? ChannelError(.internalError, "the agent registry failed", cause: error)
            return .refused(ChannelError(failure.code, "server \(serverName) cannot check agent \(hello.agent): \(failure.description)"), proof: nil)
        }
    }

    private func enroll(_ name: String, claim: EnrollmentClaim, agentPin: KeyPin, refusal: Refusal) throws -> Decision {
        let now = clock()
        if let existing = try registry.activeAgent(named: name), existing.pin != agentPin {
            return .refused(refusal.nameTaken(existing, seen: agentPin, server: serverName), proof: nil)
        }
        let record: EnrollmentCodeRecord
        switch try registry.redeemCode(id: claim.codeId, by: name, at: now) {
        case .unknown: return .refused(refusal.unknownCode(claim.codeId, agent: name, server: serverName), proof: nil)
        case let .alreadyUsed(used): return .refused(refusal.codeUsed(used, agent: name, server: serverName), proof: nil)
        case let .expired(expired): return .refused(refusal.codeExpired(expired, agent: name, server: serverName), proof: nil)
        case let .redeemed(redeemed): record = redeemed
        }
        guard let key = ChunkDigest(hex: record.key)?.raw else {
            throw ChannelError(.invalid, "the stored key of enrollment code \(record.id) is damaged; issue a new code")
        }
        let serverProof = EnrollmentProof.hex(EnrollmentProof.server(key: key, agentName: name, agentPin: agentPin, serverPin: identity.pin))
        let expected = EnrollmentProof.agent(key: key, agentName: name, agentPin: agentPin, serverPin: identity.pin)
        guard EnrollmentProof.matches(claim.proof, expected) else {
            try registry.recordOutcome(codeID: record.id, "refused: the proof was made for other keys (man in the middle suspected)")
            return .refused(refusal.proofMismatchOnServer(agent: name, agentPin: agentPin, serverPin: identity.pin,
                                                          codeID: record.id, server: serverName), proof: serverProof)
        }
        let agent = EnrolledAgent(name: name, pin: agentPin, enrolledAt: now)
        try registry.save(agent)
        try registry.recordOutcome(codeID: record.id, "enrolled")
        return .admitted(agent, proof: serverProof)
    }

    /// Sends the refusal to the agent and closes the connection.
    private func refuse(_ frames: FrameStream, _ error: ChannelError, proof: String?) {
        if let frame = try? Frame(.error, json: WireError(error, enrollmentProof: proof)) { try? frames.send(frame) }
        frames.tls.closeNotify()
        frames.tls.socket.shutdown()
    }
}
