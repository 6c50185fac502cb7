import Foundation

/// An agent's side of joining its server on a connected socket, whichever side dialed.
///
/// - Pinned (`.pinned`): the TLS verify callback accepts only the pinned server key, so a man
///   in the middle or a re-installed server fails the handshake here, with a message naming
///   both keys. Then `hello`, and the server's `welcome` or refusal.
/// - Enrolling (`.enroll`): TLS accepts any server key; the hello carries the code's id and
///   the agent's proof for (agent key, server key as seen here). The server's answer must
///   carry the server's proof for the same pair, or the agent refuses to pin it: a man in the
///   middle is detected here even if it forges the server's answer.
public final class AgentHandshake: @unchecked Sendable {
    public let identity: ChannelIdentity
    public let service: String
    public var options: SessionOptions
    public var remedies: Remedies

    /// What the agent trusts about the server.
    public enum Trust: Sendable {
        /// The server it enrolled with.
        case pinned(PinnedServer)
        /// Not enrolled yet: enroll with this code (an enrolled agent may enroll again, which
        /// replaces its pinned server).
        case enroll(EnrollmentCode)
    }

    /// The agent's session with its server.
    public struct Joined: Sendable {
        public let session: ChannelSession
        /// The server as pinned; after an enrollment the caller saves it (`PinnedServer.save`).
        public let server: PinnedServer
        public let enrolledNow: Bool
    }

    public init(identity: ChannelIdentity, service: String, options: SessionOptions = SessionOptions(),
                remedies: Remedies = .guestAgent) {
        self.identity = identity
        self.service = service
        self.options = options
        self.remedies = remedies
    }

    public var agentName: String { identity.name }

    /// Joins the server on `socket`, or throws the refusal (from either side) as a `ChannelError`.
    public func join(_ socket: TCPSocket, tlsRole: TLSRole, trust: Trust) throws -> Joined {
        let refusal = Refusal(remedies: remedies)
        let address = socket.peerAddress
        let tls: TLSStream
        do {
            var peerKeys = PeerKeys.any
            if case let .pinned(server) = trust { peerKeys = .pinned([server.pin]) }
            tls = try TLSStream.handshake(over: socket, identity: identity, role: tlsRole, peerKeys: peerKeys, timeout: options.handshakeTimeout)
        } catch let rejected as PeerKeyRejected {
            guard case let .pinned(server) = trust else { throw ChannelError(.internalError, "a key was rejected in enrollment mode") }
            throw refusal.serverKeyChanged(address: address, seen: rejected.seen, pinned: server)
        } catch let error as ChannelError where error.code == .keyRefusedByPeer {
            throw refusal.agentKeyRefused(by: address, agent: agentName, agentPin: identity.pin)
        }
        let frames = FrameStream(tls: tls, maxIncomingPayload: options.maxFramePayload, ioTimeout: options.ioTimeout)
        var hello = AgentHello(service: service, agent: agentName, maxFrame: options.maxFramePayload)
        var codeKey: [UInt8]?
        if case let .enroll(code) = trust {
            codeKey = code.key
            let proof = EnrollmentProof.agent(key: code.key, agentName: agentName, agentPin: identity.pin, serverPin: tls.peerPin)
            hello.enroll = EnrollmentClaim(codeId: code.id, proof: EnrollmentProof.hex(proof))
        }
        let answer: Frame
        do {
            try frames.send(try Frame(.hello, json: hello))
            answer = try frames.receive(firstByteTimeout: options.handshakeTimeout)
        } catch let error as ChannelError {
            frames.tls.socket.shutdown()
            if error.code == .keyRefusedByPeer { throw refusal.agentKeyRefused(by: address, agent: agentName, agentPin: identity.pin) }
            throw ChannelError(error.code, "the server at \(address) did not answer the hello of agent \(agentName): \(error.message)")
        }
        // The server's proof over the keys as this side saw them: required to pin, and it tells a
        // genuine refusal from one a man in the middle made up or passed on.
        let expectedProof = codeKey.map {
            EnrollmentProof.server(key: $0, agentName: agentName, agentPin: identity.pin, serverPin: tls.peerPin)
        }
        switch answer.type {
        case .welcome:
            let welcome = try answer.decode(ServerWelcome.self)
            if let expectedProof, !EnrollmentProof.matches(welcome.enrollmentProof, expectedProof) {
                frames.tls.socket.shutdown()
                throw refusal.proofMismatchOnAgent(address: address, seen: tls.peerPin, agent: agentName, agentPin: identity.pin, serverMessage: nil)
            }
            frames.maxOutgoingPayload = welcome.maxFrame
            var server: PinnedServer
            switch trust {
            case let .pinned(pinned): server = pinned
            case .enroll: server = PinnedServer(server: welcome.server, pin: tls.peerPin, agent: agentName, enrolledAt: Date())
            }
            let session = ChannelSession(stream: frames, role: .agent, localName: agentName, peerName: server.server, options: options)
            return Joined(session: session, server: server, enrolledNow: codeKey != nil)
        case .error:
            frames.tls.socket.shutdown()
            let wire = try answer.decode(WireError.self)
            if let expectedProof, wire.enrollmentProof != nil, !EnrollmentProof.matches(wire.enrollmentProof, expectedProof) {
                throw refusal.proofMismatchOnAgent(address: address, seen: tls.peerPin, agent: agentName, agentPin: identity.pin, serverMessage: wire.message)
            }
            throw wire.channelError(prefix: "the server at \(address) refused agent \(agentName): ")
        default:
            frames.tls.socket.shutdown()
            throw ChannelError(.protocolViolation, "the server at \(address) answered the hello with a \(answer.type) frame; is it a dpm server?")
        }
    }
}
