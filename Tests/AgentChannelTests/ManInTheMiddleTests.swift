@testable import AgentChannel
import Foundation
import XCTest

/// A proxy that terminates TLS with its own keys on both legs is detected on both sides, during
/// enrollment and on a pinned session.
final class ManInTheMiddleTests: XCTestCase {
    func testEnrollmentThroughAnInterceptorFailsOnBothSides() throws {
        let fixture = try ChannelFixture(self)
        let interceptor = try TLSInterceptor(root: fixture.root, serverPort: fixture.listener.port, behaviour: .relay)
        interceptor.interceptOne()
        let serverSide = fixture.admitNext()
        let code = try fixture.registry.issueCode()
        let identity = try fixture.agentIdentity("db01")
        let agentResult = fixture.join(identity, trust: .enroll(code), port: interceptor.port)

        let serverError = channelError(try serverSide.wait())
        XCTAssertEqual(serverError?.code, .manInTheMiddle)
        fixture.assertNames(serverError, ["db01", interceptor.keyShownToServer.description, fixture.server.pin.description, "man in the middle", "dpm agent enroll"])
        let agentError = channelError(agentResult)
        XCTAssertEqual(agentError?.code, .manInTheMiddle)
        XCTAssertEqual(agentError?.remote, false, "the agent detects it from the server's proof itself, not from the server's word")
        fixture.assertNames(agentError, [interceptor.keyShownToAgent.description, identity.pin.description, "could not prove", "nothing was pinned"])
        try interceptor.finish()

        XCTAssertNil(try fixture.registry.agent(named: "db01"), "nothing was enrolled")
        let spent = try XCTUnwrap(try fixture.registry.code(id: code.id))
        XCTAssertNotNil(spent.usedAt, "the code is spent: whoever intercepted it cannot use it later")
        XCTAssertTrue(spent.outcome?.contains("man in the middle") ?? false, "\(String(describing: spent.outcome))")
    }

    /// The interceptor never reaches the server and forges a welcome: without the code it
    /// cannot make the server's proof.
    func testForgedWelcomeIsDetectedByTheAgent() throws {
        let fixture = try ChannelFixture(self)
        let interceptor = try TLSInterceptor(root: fixture.root, serverPort: fixture.listener.port, behaviour: .forgeWelcome)
        interceptor.interceptOne()
        let agentError = channelError(fixture.join(try fixture.agentIdentity("db01"), trust: .enroll(try fixture.registry.issueCode()),
                                                   port: interceptor.port))
        XCTAssertEqual(agentError?.code, .manInTheMiddle)
        XCTAssertNil(try PinnedServer.load(folder: fixture.identityFolder("db01")), "the forged server was not pinned")
        try interceptor.finish()
    }

    func testPinnedSessionThroughAnInterceptorFailsOnBothSides() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        agent.session.close()
        server.session.close()

        let interceptor = try TLSInterceptor(root: fixture.root, serverPort: fixture.listener.port, behaviour: .impersonate("db01"))
        interceptor.interceptOne()
        let serverSide = fixture.admitNext()
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: fixture.identityFolder("db01")))
        let agentError = channelError(fixture.join(try fixture.agentIdentity("db01"), trust: .pinned(pinned), port: interceptor.port))
        XCTAssertEqual(agentError?.code, .serverKeyChanged, "the agent's verify callback refuses the interceptor's key")
        fixture.assertNames(agentError, [interceptor.keyShownToAgent.description, fixture.server.pin.description, "man in the middle"])
        try interceptor.finish()
        XCTAssertEqual((interceptor.agentLegError as? ChannelError)?.code, .keyRefusedByPeer,
                       "the interceptor got a bad_certificate alert: \(String(describing: interceptor.agentLegError))")

        // On the server leg the interceptor claims to be db01 with its own key.
        let serverError = channelError(try serverSide.wait())
        XCTAssertEqual(serverError?.code, .agentKeyChanged)
        fixture.assertNames(serverError, ["db01", interceptor.keyShownToServer.description, agent.session.localPin.description, "man in the middle"])
        XCTAssertEqual(interceptor.serverAnswer?.type, .error, "the server refused the impersonator")
        XCTAssertEqual(try fixture.registry.activeAgent(named: "db01")?.pin, agent.session.localPin, "the enrolled key is unchanged")
    }
}
