@testable import AgentChannel
import Foundation
import TestSupport
import XCTest

/// Sessions after the handshake: frame limits, a cut network, keep-alives, cancellation and
/// error frames.
final class SessionTests: XCTestCase {
    /// The socket is cut in the middle of a chunk transfer: both sides fail with the reason.
    func testNetworkCutFailsBothSidesWithTheReason() throws {
        let fixture = try ChannelFixture(self)
        try fixture.enroll("db01")
        let relay = try TCPRelay(targetPort: fixture.listener.port)
        relay.relayOne()
        let serverSide = fixture.admitNext()
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let agent = try fixture.join(try fixture.agentIdentity("db01"), trust: .pinned(pinned), port: relay.port).get().session
        let server = try serverSide.value().session

        let stored = StoredChunks()
        let receiving = stored.receive(on: server)
        let sending = Background("the sender") { () -> ChunkTransferCounters in
            let job = try agent.openJob(request: ["op": "backup"])
            let sender = ChunkSender(job: job)
            for index in 0..<10_000 { try sender.add(TestData.random(64 << 10, seed: UInt64(index))) }
            return try sender.finish()
        }
        XCTAssertTrue(eventually { stored.count >= 20 }, "chunks started to arrive")
        relay.cut()

        let receiverError = channelError(try receiving.wait())
        let senderError = channelError(try sending.wait())
        XCTAssertEqual(receiverError?.code, .connectionLost)
        XCTAssertEqual(senderError?.code, .connectionLost)
        fixture.assertNames(receiverError, ["agent db01", "was cut"])
        fixture.assertNames(senderError, ["server dpm01", "was cut"])
        XCTAssertLessThan(stored.count, 10_000)
        XCTAssertFalse(server.isOpen)
        XCTAssertFalse(agent.isOpen)
    }

    /// A header announcing 1 GiB is refused at once: the receiver never tries to read (or
    /// allocate) the payload. Had it tried, it would wait for bytes that never come and fail
    /// with a timeout instead.
    func testOversizedFrameIsRefusedBeforeAllocation() throws {
        let fixture = try ChannelFixture(self)
        fixture.options.ioTimeout = 120
        let (agent, server) = try fixture.enroll("db01")
        let header = Frame(.data, job: 2, payload: []).header
        var oversized = header
        oversized[0] = 0x40  // 1 GiB
        try oversized.withUnsafeBytes { try agent.session.stream.tls.write($0, timeout: 10) }

        XCTAssertTrue(eventually { !server.session.isOpen })
        let serverError = server.session.failure
        XCTAssertEqual(serverError?.code, .frameTooLarge)
        fixture.assertNames(serverError, ["1073741824 bytes", "limit of \(8 << 20)", "nothing was allocated"])
        // The agent hears why.
        XCTAssertTrue(eventually { !agent.session.isOpen })
        XCTAssertEqual(agent.session.failure?.code, .frameTooLarge)
        XCTAssertEqual(agent.session.failure?.remote, true)
        agent.session.close()
        server.session.close()
    }

    /// A sender refuses, without sending, a payload above the peer's announced limit; the
    /// session stays usable.
    func testSenderRespectsThePeersLimit() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let job = try agent.session.openJob(request: ["op": "big"])
        XCTAssertThrowsError(try job.send(.data, [UInt8](repeating: 1, count: (8 << 20) + 1))) { error in
            XCTAssertEqual((error as? ChannelError)?.code, .frameTooLarge)
        }
        try job.send(.data, [UInt8](repeating: 1, count: 8 << 20))
        let (received, _) = try server.session.acceptJob(timeout: 20)
        XCTAssertEqual(try received.receive(.data, timeout: 20).payload.count, 8 << 20)
        XCTAssertTrue(agent.session.isOpen)
        agent.session.close()
        server.session.close()
    }

    /// Idle sessions stay up on pings alone, and a peer that stops answering is declared gone.
    func testKeepAliveKeepsIdleSessionAndDetectsASilentPeer() throws {
        let fixture = try ChannelFixture(self)
        fixture.options.keepAliveInterval = 0.2
        fixture.options.keepAliveTimeout = 3
        let (agent, server) = try fixture.enroll("db01")
        let before = server.session.bytesReceived
        Thread.sleep(forTimeInterval: 4)
        XCTAssertTrue(server.session.isOpen, "\(String(describing: server.session.failure))")
        XCTAssertTrue(agent.session.isOpen, "\(String(describing: agent.session.failure))")
        XCTAssertGreaterThan(server.session.bytesReceived, before, "pings arrived while idle")

        agent.session.close()
        server.session.close()

        // A peer that completes the handshake and then never sends again (hung, or its network
        // silently drops packets): a hand-made agent that speaks the hello and falls silent.
        let serverSide = fixture.admitNext()
        let identity = try fixture.agentIdentity("db01")
        let tls = try TLSStream.handshake(over: try TCPSocket.connect(host: "127.0.0.1", port: fixture.listener.port, timeout: 10),
                                          identity: identity, role: .client, peerKeys: .pinned([fixture.server.pin]), timeout: 10)
        let silent = FrameStream(tls: tls, maxIncomingPayload: 1 << 20, ioTimeout: 10)
        try silent.send(try Frame(.hello, json: AgentHello(service: ChannelFixture.service, agent: "db01", maxFrame: 1 << 20)))
        XCTAssertEqual(try silent.receive().type, .welcome)
        let watched = try serverSide.value().session
        XCTAssertTrue(eventually { !watched.isOpen })
        XCTAssertEqual(watched.failure?.code, .peerGone)
        fixture.assertNames(watched.failure, ["agent db01", "not even a keep-alive", "3.0 s"])
        watched.close()
    }

    func testCancelFromEitherSide() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")

        // The server cancels a job the agent is working on.
        let job = try server.session.openJob(request: ["op": "long"])
        let (agentJob, _) = try agent.session.acceptJob(timeout: 20)
        let handlerRan = DispatchSemaphore(value: 0)
        agentJob.onCancel { _ in handlerRan.signal() }
        job.cancel(reason: "operator pressed stop")
        XCTAssertEqual(handlerRan.wait(timeout: .now() + 20), .success, "the agent's cancel handler ran")
        XCTAssertThrowsError(try agentJob.receive(timeout: 20)) { error in
            XCTAssertEqual((error as? ChannelError)?.code, .cancelled)
            XCTAssertTrue("\(error)".contains("operator pressed stop"), "\(error)")
        }
        XCTAssertThrowsError(try agentJob.send(.data, [1])) { XCTAssertEqual(($0 as? ChannelError)?.code, .cancelled) }
        XCTAssertThrowsError(try job.send(.data, [1])) { XCTAssertEqual(($0 as? ChannelError)?.code, .cancelled) }

        // The agent cancels a chunk exchange the server is receiving.
        let exchange = try agent.session.openJob(request: ["op": "backup"])
        let (serverJob, _) = try server.session.acceptJob(timeout: 20)
        let receiving = Background("the receiver") {
            try ChunkReceiver(job: serverJob, has: { _ in false }, store: { _, _ in }).run()
        }
        let sender = ChunkSender(job: exchange)
        try sender.add(TestData.random(1000, seed: 1))
        exchange.cancel(reason: "the guest is shutting down")
        let error = channelError(try receiving.wait())
        XCTAssertEqual(error?.code, .cancelled)
        fixture.assertNames(error, ["job 2 with agent db01", "cancelled by the agent: the guest is shutting down"])

        // Cancelling ends a job, not the session.
        XCTAssertTrue(server.session.isOpen && agent.session.isOpen)
        let next = try server.session.openJob(request: ["op": "after"])
        let (nextOnAgent, request) = try agent.session.acceptJob(timeout: 20)
        XCTAssertEqual(try request.decode([String: String].self)["op"], "after")
        try nextOnAgent.end()
        XCTAssertEqual(try next.receive(timeout: 20).type, .end)
        agent.session.close()
        server.session.close()
    }

    func testJobErrorReachesThePeerWithItsCode() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let job = try server.session.openJob(request: ["op": "backup", "source": "pg-cluster main"])
        let (agentJob, _) = try agent.session.acceptJob(timeout: 20)
        agentJob.fail(ChannelError(.invalid, "PostgreSQL at /run/postgresql refused the connection: is the server running?"))
        XCTAssertThrowsError(try job.receive(timeout: 20)) { error in
            let channel = error as? ChannelError
            XCTAssertEqual(channel?.code, .invalid)
            XCTAssertEqual(channel?.remote, true)
            XCTAssertTrue(channel?.message.contains("agent db01") ?? false, "\(error)")
            XCTAssertTrue(channel?.message.contains("refused the connection") ?? false, "\(error)")
        }
        XCTAssertTrue(server.session.isOpen)
        agent.session.close()
        server.session.close()
    }
}
