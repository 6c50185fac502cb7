@testable import AgentChannel
import Foundation
import TestSupport
import XCTest

/// Enrollment with a one-time code, then pinned sessions, over real TCP and OpenSSL.
final class EnrollmentTests: XCTestCase {
    func testEnrollmentThenPinnedSessionCarriesJobs() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        XCTAssertTrue(agent.enrolledNow)
        XCTAssertTrue(server.enrolledNow)
        let agentIdentity = try fixture.agentIdentity("db01")
        XCTAssertEqual(server.agent.pin, agentIdentity.pin, "the server pinned the key the agent holds")
        XCTAssertEqual(agent.server.pin, fixture.server.pin, "the agent pinned the key the server holds")
        XCTAssertEqual(agent.server.server, "dpm01")
        XCTAssertEqual(try fixture.registry.activeAgent(named: "db01")?.pin, agentIdentity.pin)
        agent.session.close()
        server.session.close()

        let (agentSession, serverSession) = try fixture.pinnedSession("db01")
        XCTAssertEqual(serverSession.peerName, "db01")
        XCTAssertEqual(agentSession.peerName, "dpm01")
        XCTAssertEqual(serverSession.peerPin, agentIdentity.pin)
        XCTAssertEqual(agentSession.peerPin, fixture.server.pin)
        try assertEchoes(opener: serverSession, answerer: agentSession)
        try assertEchoes(opener: agentSession, answerer: serverSession)
        serverSession.close(reason: "test done")
        XCTAssertTrue(eventually { !agentSession.isOpen })
        XCTAssertEqual(agentSession.failure?.code, .closed)
        XCTAssertTrue(agentSession.failure?.message.contains("test done") ?? false, "\(String(describing: agentSession.failure))")
        agentSession.close()
    }

    /// The server dials the agent, which listens on IPv6 loopback and is the TLS server.
    func testServerDialsAgentOverIPv6() throws {
        let fixture = try ChannelFixture(self)
        let agentListener = try TCPListener(host: "::1", port: 0)
        defer { agentListener.close() }
        let identity = try fixture.agentIdentity("web01")
        let code = try fixture.registry.issueCode()

        func round(_ trust: AgentHandshake.Trust) throws -> (AgentHandshake.Joined, ServerHandshake.Admission) {
            let agent = Background("the agent accepting its server") { () -> AgentHandshake.Joined in
                try fixture.agentHandshake(identity).join(try agentListener.accept(timeout: 30), tlsRole: .server, trust: trust)
            }
            let socket = try TCPSocket.connect(host: "::1", port: agentListener.port, timeout: 10)
            XCTAssertTrue(socket.peerAddress.hasPrefix("[::1]:"), socket.peerAddress)
            let admission = try fixture.serverHandshake.admit(socket, tlsRole: .client)
            return (try agent.value(), admission)
        }
        let (enrolled, first) = try round(.enroll(code))
        XCTAssertTrue(first.enrolledNow)
        enrolled.session.close()
        first.session.close()
        let (joined, second) = try round(.pinned(enrolled.server))
        XCTAssertFalse(second.enrolledNow)
        try assertEchoes(opener: second.session, answerer: joined.session)
        joined.session.close()
        second.session.close()
    }

    func testReusedCodeIsRefusedOnBothSides() throws {
        let fixture = try ChannelFixture(self)
        let code = try fixture.registry.issueCode()
        let (first, firstServer) = try fixture.connect(try fixture.agentIdentity("db01"), trust: .enroll(code))
        try first.get().session.close()
        try firstServer.get().session.close()

        let (agent, server) = try fixture.connect(try fixture.agentIdentity("db02"), trust: .enroll(code))
        let serverError = channelError(server)
        let agentError = channelError(agent)
        XCTAssertEqual(serverError?.code, .codeUsed)
        XCTAssertEqual(agentError?.code, .codeUsed)
        XCTAssertEqual(agentError?.remote, true)
        for error in [serverError, agentError] {
            fixture.assertNames(error, ["db02", code.id, "already used by agent db01", "dpm01", "single-use", "dpm agent enroll"])
        }
        XCTAssertNil(try fixture.registry.agent(named: "db02"), "a refused agent must not be enrolled")
    }

    func testExpiredCodeIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let code = try fixture.registry.issueCode(validFor: 600, now: Date().addingTimeInterval(-3600))
        let (agent, server) = try fixture.connect(try fixture.agentIdentity("db01"), trust: .enroll(code))
        XCTAssertEqual(channelError(server)?.code, .codeExpired)
        let agentError = channelError(agent)
        XCTAssertEqual(agentError?.code, .codeExpired)
        fixture.assertNames(agentError, ["db01", code.id, "expired", "dpm agent enroll"])
        // An expired code is not spent: its record says nobody used it.
        XCTAssertNil(try fixture.registry.code(id: code.id)?.usedAt)
    }

    func testCodeOfAnotherServerIsUnknown() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.connect(try fixture.agentIdentity("db01"), trust: .enroll(try EnrollmentCode.generate()))
        XCTAssertEqual(channelError(server)?.code, .unknownCode)
        fixture.assertNames(channelError(agent), ["never issued", "dpm agent enroll"])
    }

    func testCodesAreTypeableAndDistinct() throws {
        let code = try EnrollmentCode.generate()
        XCTAssertEqual(code.description.count, 23)
        XCTAssertEqual(code.description.filter { $0 == "-" }.count, 3)
        let typed = code.description.lowercased().replacingOccurrences(of: "-", with: " ")
        XCTAssertEqual(try EnrollmentCode(parsing: typed).id, code.id, "case and separators do not matter")
        let misread = try EnrollmentCode(parsing: "0I1LO-00000-00000-00000")
        XCTAssertEqual(misread.normalized, "01110000000000000000", "O reads as 0, I and L as 1")
        XCTAssertThrowsError(try EnrollmentCode(parsing: "ABCDE-FGHJK")) { error in
            XCTAssertTrue("\(error)".contains("20 symbols"), "\(error)")
        }
        XCTAssertThrowsError(try EnrollmentCode(parsing: "UUUUU-00000-00000-00000"))
        // 100 random bits: a thousand codes never collide, and every symbol position varies.
        let codes = try (0..<1000).map { _ in try EnrollmentCode.generate().normalized }
        XCTAssertEqual(Set(codes).count, 1000)
        for position in 0..<20 {
            let symbols = Set(codes.map { Array($0)[position] })
            XCTAssertGreaterThan(symbols.count, 20, "position \(position) uses only \(symbols.count) symbols")
        }
    }

    func testIdentityFilesAndPinAreStable() throws {
        let root = try TestSupport.temporaryDirectory(self)
        let created = try ChannelIdentity.create(folder: root + "/id", name: "db01")
        var status = stat()
        XCTAssertEqual(stat(root + "/id/key.pem", &status), 0)
        XCTAssertEqual(status.st_mode & 0o777, 0o600, "the private key is 0600")
        let loaded = try ChannelIdentity.load(folder: root + "/id")
        XCTAssertEqual(loaded.pin, created.pin)
        XCTAssertEqual(loaded.name, "db01")
        XCTAssertThrowsError(try ChannelIdentity.create(folder: root + "/id", name: "db01"), "never overwrites a key silently")
        // openssl computes the same pin: SHA-256 of the DER SubjectPublicKeyInfo.
        try TestSupport.require("openssl")
        let result = try TestSupport.run(["sh", "-c", "openssl x509 -in '\(root)/id/certificate.pem' -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"])
        XCTAssertEqual(result.output.split(separator: " ").first.map(String.init), created.pin.hex)
        chmod(root + "/id/key.pem", 0o644)
        XCTAssertThrowsError(try ChannelIdentity.load(folder: root + "/id")) { error in
            XCTAssertTrue("\(error)".contains("chmod 600"), "\(error)")
        }
    }

    /// `opener` opens a job with a request; `answerer` replies; the reply comes back.
    private func assertEchoes(opener: ChannelSession, answerer: ChannelSession, file: StaticString = #filePath, line: UInt = #line) throws {
        struct Echo: Codable, Equatable { var text: String }
        let answering = Background("answering a job") { () -> String in
            let (job, request) = try answerer.acceptJob(timeout: 20)
            let echo = try request.decode(Echo.self)
            try job.send(.reply, json: Echo(text: echo.text.uppercased()))
            try job.end()
            return echo.text
        }
        let job = try opener.openJob(request: Echo(text: "hello from \(opener.localName)"))
        XCTAssertEqual(try job.receive(.reply, timeout: 20).decode(Echo.self), Echo(text: "HELLO FROM \(opener.localName.uppercased())"), file: file, line: line)
        XCTAssertEqual(try job.receive(.end, timeout: 20).type, .end, file: file, line: line)
        XCTAssertEqual(try answering.value(), "hello from \(opener.localName)", file: file, line: line)
    }
}
