@testable import AgentChannel
import Foundation

/// A man in the middle: it accepts the agent's connection, terminates TLS with its own key,
/// dials the real server, terminates TLS there with another key of its own, and relays the
/// decrypted bytes between the two legs. What an intercepting proxy with a stolen network
/// position (but no stolen key) can do.
final class TLSInterceptor: @unchecked Sendable {
    enum Behaviour {
        /// Relay everything between the two legs.
        case relay
        /// Never reach the server: answer the agent's hello with a forged welcome.
        case forgeWelcome
        /// When the agent leg fails (the agent refused this key), claim the agent's name on
        /// the server leg with this interceptor's own key.
        case impersonate(String)
    }

    let listener: TCPListener
    private let facingAgent: ChannelIdentity
    private let facingServer: ChannelIdentity
    private let serverPort: UInt16
    private let behaviour: Behaviour
    /// The server's answer on the server leg when impersonating.
    private(set) var serverAnswer: Frame?
    private(set) var agentLegError: Error?
    private var work: Background<Void>?

    init(root: String, serverPort: UInt16, behaviour: Behaviour) throws {
        listener = try TCPListener(host: "127.0.0.1", port: 0)
        facingAgent = try ChannelIdentity.create(folder: root + "/mitm-a", name: "dpm01")
        facingServer = try ChannelIdentity.create(folder: root + "/mitm-s", name: "db01")
        self.serverPort = serverPort
        self.behaviour = behaviour
    }

    var port: UInt16 { listener.port }
    var keyShownToAgent: KeyPin { facingAgent.pin }
    var keyShownToServer: KeyPin { facingServer.pin }

    /// Intercepts one connection in the background.
    func interceptOne() {
        work = Background("the interceptor") { [self] in
            let agentSocket = try listener.accept(timeout: 30)
            let agentLeg: TLSStream
            do {
                agentLeg = try TLSStream.handshake(over: agentSocket, identity: facingAgent, role: .server, peerKeys: .any, timeout: 10)
            } catch {
                agentLegError = error
                if case let .impersonate(name) = behaviour { try impersonate(name) }
                return
            }
            if case .forgeWelcome = behaviour {
                let frames = FrameStream(tls: agentLeg, maxIncomingPayload: 1 << 20, ioTimeout: 10)
                let hello = try frames.receive().decode(AgentHello.self)
                try frames.send(try Frame(.welcome, json: ServerWelcome(server: "dpm01", agent: hello.agent, maxFrame: 1 << 20, enrolled: true,
                                                                         enrollmentProof: String(repeating: "ab", count: 32))))
                _ = try? frames.receive()  // hold the connection until the agent gives up
                return
            }
            let serverLeg = try dialServer()
            let toServer = Background("relay agent → server") { Self.copy(from: agentLeg, to: serverLeg) }
            Self.copy(from: serverLeg, to: agentLeg)
            _ = try toServer.wait()
        }
    }

    /// Waits for the interception to end.
    func finish() throws {
        _ = try work?.wait()
    }

    private func dialServer() throws -> TLSStream {
        try TLSStream.handshake(over: try TCPSocket.connect(host: "127.0.0.1", port: serverPort, timeout: 10),
                                identity: facingServer, role: .client, peerKeys: .any, timeout: 10)
    }

    private func impersonate(_ name: String) throws {
        let frames = FrameStream(tls: try dialServer(), maxIncomingPayload: 1 << 20, ioTimeout: 10)
        try frames.send(try Frame(.hello, json: AgentHello(service: ChannelFixture.service, agent: name, maxFrame: 1 << 20)))
        serverAnswer = try frames.receive()
    }

    /// Copies decrypted bytes one way until either leg fails, then shuts both.
    private static func copy(from source: TLSStream, to target: TLSStream) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            do {
                let count = try buffer.withUnsafeMutableBytes { try source.read(into: $0, timeout: 30) }
                try buffer.withUnsafeBytes { try target.write(UnsafeRawBufferPointer(rebasing: $0[..<count]), timeout: 30) }
            } catch {
                source.socket.shutdown()
                target.socket.shutdown()
                return
            }
        }
    }
}
