@testable import AgentChannel
import Foundation
import XCTest

/// Every refusal is reported on both sides, naming the agent or server, the key seen and the fix.
final class RefusalTests: XCTestCase {
    func testUnenrolledAgentIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let stranger = try fixture.agentIdentity("intruder")
        // It knows the server's real key (so its own TLS check passes) but was never enrolled.
        let pinned = PinnedServer(server: "dpm01", pin: fixture.server.pin, agent: "intruder", enrolledAt: Date())
        let (agent, server) = try fixture.connect(stranger, trust: .pinned(pinned))
        let serverError = channelError(server)
        let agentError = channelError(agent)
        XCTAssertEqual(serverError?.code, .unknownAgent)
        XCTAssertEqual(agentError?.code, .unknownAgent)
        for error in [serverError, agentError] {
            fixture.assertNames(error, ["intruder", stranger.pin.description, "not enrolled", "dpm01", "dpm agent enroll"])
        }
        XCTAssertTrue(agentError?.message.contains("refused agent intruder") ?? false, "\(String(describing: agentError))")
    }

    func testKnownKeyUnderAnotherNameIsNamed() throws {
        let fixture = try ChannelFixture(self)
        let identity = try fixture.agentIdentity("db01")
        try fixture.registry.save(EnrolledAgent(name: "web01", pin: identity.pin, enrolledAt: Date()))
        let pinned = PinnedServer(server: "dpm01", pin: fixture.server.pin, agent: "db01", enrolledAt: Date())
        let (agent, server) = try fixture.connect(identity, trust: .pinned(pinned))
        XCTAssertEqual(channelError(server)?.code, .unknownAgent)
        fixture.assertNames(channelError(agent), ["agent db01", "enrolled as agent web01", "configure the agent with the name web01"])
    }

    func testRevokedAgentIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        agent.session.close()
        server.session.close()
        let revoked = try fixture.registry.revoke("db01", at: Date())
        XCTAssertNotNil(revoked.revokedAt)
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let (agentResult, serverResult) = try fixture.connect(try fixture.agentIdentity("db01"), trust: .pinned(pinned))
        XCTAssertEqual(channelError(serverResult)?.code, .revokedAgent)
        let agentError = channelError(agentResult)
        XCTAssertEqual(agentError?.code, .revokedAgent)
        fixture.assertNames(agentError, ["db01", "revoked", "dpm01", agent.session.localPin.description, "dpm agent enroll"])

        // Enrolling again with a new code lets it back in.
        let again = try fixture.enroll("db01")
        XCTAssertNil(try fixture.registry.agent(named: "db01")?.revokedAt)
        again.agent.session.close()
        again.server.session.close()
    }

    func testAgentWhoseKeyChangedIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let oldPin = agent.session.localPin
        agent.session.close()
        server.session.close()
        // The agent is re-installed: same name, same pinned server, new key.
        let reinstalled = try ChannelIdentity.create(folder: fixture.identityFolder("db01"), name: "db01", replacing: true)
        XCTAssertNotEqual(reinstalled.pin, oldPin)
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let (agentResult, serverResult) = try fixture.connect(reinstalled, trust: .pinned(pinned))
        let serverError = channelError(serverResult)
        let agentError = channelError(agentResult)
        XCTAssertEqual(serverError?.code, .agentKeyChanged)
        XCTAssertEqual(agentError?.code, .agentKeyChanged)
        for error in [serverError, agentError] {
            fixture.assertNames(error, ["db01", reinstalled.pin.description, oldPin.description, "dpm agent revoke db01", "dpm agent enroll"])
        }

        // Enrolling the new key under the taken name is refused until the old one is revoked.
        let code = try fixture.registry.issueCode()
        let (taken, takenServer) = try fixture.connect(reinstalled, trust: .enroll(code))
        XCTAssertEqual(channelError(takenServer)?.code, .nameTaken)
        fixture.assertNames(channelError(taken), ["db01", "already enrolled", "dpm agent revoke db01"])
        try fixture.registry.revoke("db01", at: Date())
        let again = try fixture.enroll("db01")
        XCTAssertEqual(try fixture.registry.activeAgent(named: "db01")?.pin, reinstalled.pin)
        again.agent.session.close()
        again.server.session.close()
    }

    /// The server was re-installed: a new key answers on the same port.
    func testServerWhoseKeyChangedIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        agent.session.close()
        server.session.close()
        let newServer = try ChannelIdentity.create(folder: fixture.root + "/server", name: "dpm01", replacing: true)
        let handshake = ServerHandshake(identity: newServer, service: ChannelFixture.service, registry: fixture.registry, options: fixture.options)
        let serverSide = fixture.admitNext(handshake: handshake)
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let agentError = channelError(fixture.join(try fixture.agentIdentity("db01"), trust: .pinned(pinned)))
        XCTAssertEqual(agentError?.code, .serverKeyChanged)
        XCTAssertEqual(agentError?.remote, false, "the agent found it itself, in its verify callback")
        fixture.assertNames(agentError, [newServer.pin.description, fixture.server.pin.description, "dpm01", "db01", "man in the middle", "re-installed", "dpm agent enroll"])
        let serverError = channelError(try serverSide.wait())
        XCTAssertEqual(serverError?.code, .keyRefusedByPeer)
        fixture.assertNames(serverError, ["refused the key of server dpm01", newServer.pin.description, "dpm agent enroll"])
    }

    /// Same refusal when the agent is the TLS server (the server dialed it): the TLS client
    /// learns of the refusal only at its first read, the hello round trip.
    func testServerWhoseKeyChangedIsRefusedWhenServerDials() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        agent.session.close()
        server.session.close()
        let newServer = try ChannelIdentity.create(folder: fixture.root + "/server", name: "dpm01", replacing: true)
        let agentListener = try TCPListener(host: "127.0.0.1", port: 0)
        defer { agentListener.close() }
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let identity = try fixture.agentIdentity("db01")
        let agentSide = Background("the agent accepting its server") {
            try fixture.agentHandshake(identity).join(try agentListener.accept(timeout: 20), tlsRole: .server, trust: .pinned(pinned))
        }
        let handshake = ServerHandshake(identity: newServer, service: ChannelFixture.service, registry: fixture.registry, options: fixture.options)
        let serverResult = Result { try handshake.admit(try TCPSocket.connect(host: "127.0.0.1", port: agentListener.port, timeout: 10), tlsRole: .client) }
        XCTAssertEqual(channelError(serverResult)?.code, .keyRefusedByPeer)
        XCTAssertEqual(channelError(try agentSide.wait())?.code, .serverKeyChanged)
    }

    func testAgentOnTheWrongPortIsToldSo() throws {
        let fixture = try ChannelFixture(self)
        let identity = try fixture.agentIdentity("kvm1")
        let serverSide = fixture.admitNext()
        let hostAgent = AgentHandshake(identity: identity, service: "host-agent", options: fixture.options, remedies: .hostAgent)
        let agentResult = Result {
            try hostAgent.join(try TCPSocket.connect(host: "127.0.0.1", port: fixture.listener.port, timeout: 10),
                               tlsRole: .client, trust: .enroll(try fixture.registry.issueCode()))
        }
        XCTAssertEqual(channelError(try serverSide.wait())?.code, .protocolViolation)
        fixture.assertNames(channelError(agentResult), ["host-agent kvm1", "guest-agent port"])
    }

    func testNobodyListeningNamesThePort() throws {
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let port = listener.port
        listener.close()
        XCTAssertThrowsError(try TCPSocket.connect(host: "127.0.0.1", port: port, timeout: 5)) { error in
            XCTAssertEqual((error as? ChannelError)?.code, .connectFailed)
            XCTAssertTrue("\(error)".contains("127.0.0.1:\(port)"), "\(error)")
        }
    }
}
