import Foundation

/// The commands refusal messages give as the fix. A guest agent and a host agent are enrolled
/// and removed with different dpm commands.
public struct Remedies: Sendable {
    /// Prints a new enrollment code on the server.
    public var enroll: String
    /// Revokes an enrolled agent on the server (the agent's name follows).
    public var revoke: String

    public init(enroll: String, revoke: String) {
        self.enroll = enroll
        self.revoke = revoke
    }

    public static let guestAgent = Remedies(enroll: "dpm agent enroll", revoke: "dpm agent revoke")
    public static let hostAgent = Remedies(enroll: "dpm host add", revoke: "dpm host remove")
}

/// The texts of every refusal, each naming the agent or server, the key seen and the fix.
/// The server sends its message in the error frame; the agent shows it after
/// "server S (address) refused this agent: ".
struct Refusal {
    let remedies: Remedies

    private func date(_ value: Date) -> String { ISO8601DateFormatter().string(from: value) }

    private var enrollAgain: String { "enroll it again with a new code from `\(remedies.enroll)` on the server" }

    // MARK: Server side

    func unknownAgent(_ name: String, pin: KeyPin, server: String, enrolledAs other: String?) -> ChannelError {
        if let other {
            return ChannelError(.unknownAgent, "agent \(name) (key \(pin)) is not enrolled on server \(server), but its key is enrolled as agent \(other): configure the agent with the name \(other), or \(enrollAgain)")
        }
        return ChannelError(.unknownAgent, "agent \(name) (key \(pin)) is not enrolled on server \(server): run `\(remedies.enroll)` on the server and enroll the agent with the code it prints")
    }

    func revokedAgent(_ agent: EnrolledAgent, seen: KeyPin, server: String) -> ChannelError {
        ChannelError(.revokedAgent, "agent \(agent.name) (key \(seen)) was revoked on server \(server) at \(date(agent.revokedAt ?? agent.enrolledAt)): to let it back in, \(enrollAgain)")
    }

    func agentKeyChanged(_ agent: EnrolledAgent, seen: KeyPin, server: String) -> ChannelError {
        ChannelError(.agentKeyChanged, "agent \(agent.name) presented key \(seen), but server \(server) enrolled \(agent.name) with key \(agent.pin): either the agent was re-installed and made a new key, or someone else claims its name (a man in the middle). If the agent was re-installed, run `\(remedies.revoke) \(agent.name)` and \(enrollAgain)")
    }

    func nameTaken(_ agent: EnrolledAgent, seen: KeyPin, server: String) -> ChannelError {
        ChannelError(.nameTaken, "agent name \(agent.name) is already enrolled on server \(server) with key \(agent.pin), and this agent's key is \(seen): if this is a re-installed \(agent.name), run `\(remedies.revoke) \(agent.name)` first and enroll with a new code; otherwise give this agent another name")
    }

    func unknownCode(_ id: String, agent: String, server: String) -> ChannelError {
        ChannelError(.unknownCode, "agent \(agent) used an enrollment code (id \(id)) that server \(server) never issued (a typo, or another server's code): get a new code with `\(remedies.enroll)` on the server")
    }

    func codeUsed(_ record: EnrollmentCodeRecord, agent: String, server: String) -> ChannelError {
        ChannelError(.codeUsed, "agent \(agent) used enrollment code \(record.id), which was already used by agent \(record.usedBy ?? "?") at \(date(record.usedAt ?? record.createdAt)) on server \(server): codes are single-use; get a new code with `\(remedies.enroll)`")
    }

    func codeExpired(_ record: EnrollmentCodeRecord, agent: String, server: String) -> ChannelError {
        ChannelError(.codeExpired, "agent \(agent) used enrollment code \(record.id), which expired at \(date(record.expiresAt)) on server \(server): get a new code with `\(remedies.enroll)`")
    }

    func proofMismatchOnServer(agent: String, agentPin: KeyPin, serverPin: KeyPin, codeID: String, server: String) -> ChannelError {
        ChannelError(.manInTheMiddle, "agent \(agent) knows enrollment code \(codeID), but its proof was made for other keys than the ones server \(server) saw (agent key \(agentPin), server key \(serverPin)): a man in the middle terminated TLS between them. The code is spent; remove what intercepts the connection, then enroll with a new code from `\(remedies.enroll)`")
    }

    func serverKeyRefused(by address: String, serverPin: KeyPin, server: String) -> ChannelError {
        ChannelError(.keyRefusedByPeer, "the agent at \(address) refused the key of server \(server) (\(serverPin)) in the TLS handshake: it has pinned another server key. If this server was re-installed or its key replaced, enroll the agent again with a new code from `\(remedies.enroll)`; otherwise something between them intercepts TLS (a man in the middle)")
    }

    // MARK: Agent side

    func serverKeyChanged(address: String, seen: KeyPin?, pinned: PinnedServer) -> ChannelError {
        ChannelError(.serverKeyChanged, "the server at \(address) presented key \(seen.map { "\($0)" } ?? "(none)"), but agent \(pinned.agent) pinned server \(pinned.server) with key \(pinned.pin): either a man in the middle intercepts the connection or the server was re-installed with a new key. If the server was re-installed, enroll this agent again with a new code from `\(remedies.enroll)` on the server; otherwise find what intercepts TLS between them")
    }

    func agentKeyRefused(by address: String, agent: String, agentPin: KeyPin) -> ChannelError {
        ChannelError(.keyRefusedByPeer, "the server at \(address) refused the key of agent \(agent) (\(agentPin)) in the TLS handshake: it does not know this key. Enroll this agent with a new code from `\(remedies.enroll)` on the server")
    }

    func proofMismatchOnAgent(address: String, seen: KeyPin, agent: String, agentPin: KeyPin, serverMessage: String?) -> ChannelError {
        let answer = serverMessage.map { " The server said: \($0)" } ?? ""
        return ChannelError(.manInTheMiddle, "the server at \(address) (key \(seen)) could not prove it knows the enrollment code for the keys agent \(agent) saw (agent key \(agentPin)): a man in the middle terminated TLS between them, and nothing was pinned. Remove what intercepts the connection, then enroll with a new code from `\(remedies.enroll)`.\(answer)")
    }
}
