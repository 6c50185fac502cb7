@testable import AgentChannel
import Foundation
import TestSupport
import XCTest

/// A dpm server side on loopback (identity, registry, listener) and helpers to run agents
/// against it, every side through real TCP and real OpenSSL.
final class ChannelFixture {
    let root: String
    let server: ChannelIdentity
    let registry: AgentRegistryFile
    let listener: TCPListener
    var options: SessionOptions
    static let service = "guest-agent"

    init(_ test: XCTestCase, host: String = "127.0.0.1", serverName: String = "dpm01") throws {
        root = try TestSupport.temporaryDirectory(test)
        server = try ChannelIdentity.create(folder: root + "/server", name: serverName)
        registry = try AgentRegistryFile(folder: root + "/server")
        listener = try TCPListener(host: host, port: 0)
        options = SessionOptions()
        options.handshakeTimeout = 20
        options.ioTimeout = 20
        test.addTeardownBlock { [listener] in listener.close() }
    }

    var serverHandshake: ServerHandshake {
        ServerHandshake(identity: server, service: ChannelFixture.service, registry: registry, options: options)
    }

    func identityFolder(_ name: String) -> String { root + "/agents/" + name }

    func agentIdentity(_ name: String) throws -> ChannelIdentity {
        try ChannelIdentity.loadOrCreate(folder: identityFolder(name), name: name)
    }

    func agentHandshake(_ identity: ChannelIdentity) -> AgentHandshake {
        AgentHandshake(identity: identity, service: ChannelFixture.service, options: options)
    }

    /// The server side of the next connection to the listener, in the background.
    func admitNext(tlsRole: TLSRole = .server, handshake: ServerHandshake? = nil) -> Background<ServerHandshake.Admission> {
        let handshake = handshake ?? serverHandshake
        return Background("the server admitting an agent") { [listener] in
            try handshake.admit(try listener.accept(timeout: 30), tlsRole: tlsRole)
        }
    }

    /// The agent dials `port` (the server's listener by default) and joins.
    func join(_ identity: ChannelIdentity, trust: AgentHandshake.Trust, port: UInt16? = nil) -> Result<AgentHandshake.Joined, Error> {
        Result {
            let socket = try TCPSocket.connect(host: listener.host, port: port ?? listener.port, timeout: 10)
            return try agentHandshake(identity).join(socket, tlsRole: .client, trust: trust)
        }
    }

    /// Both sides of one connection: the agent dials, the server admits.
    func connect(_ identity: ChannelIdentity, trust: AgentHandshake.Trust)
        throws -> (agent: Result<AgentHandshake.Joined, Error>, server: Result<ServerHandshake.Admission, Error>) {
        let server = admitNext()
        let agent = join(identity, trust: trust)
        return (agent, try server.wait())
    }

    /// Enrolls `name` with a fresh code, saves the pinned server and returns both sessions.
    @discardableResult
    func enroll(_ name: String) throws -> (agent: AgentHandshake.Joined, server: ServerHandshake.Admission) {
        let identity = try agentIdentity(name)
        let code = try registry.issueCode()
        let (agent, server) = try connect(identity, trust: .enroll(code))
        let joined = try agent.get()
        try joined.server.save(folder: identityFolder(name))
        return (joined, try server.get())
    }

    /// A pinned session of an enrolled agent.
    func pinnedSession(_ name: String) throws -> (agent: ChannelSession, server: ChannelSession) {
        let pinned = try XCTUnwrap(try PinnedServer.load(folder: identityFolder(name)))
        let (agent, server) = try connect(try agentIdentity(name), trust: .pinned(pinned))
        return (try agent.get().session, try server.get().session)
    }

    /// Asserts that a refusal names what the brief asks for.
    func assertNames(_ error: ChannelError?, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        guard let error else { return }
        for part in parts {
            XCTAssertTrue(error.message.contains(part), "\"\(part)\" is missing from: \(error.message)", file: file, line: line)
        }
    }
}
