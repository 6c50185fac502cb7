import Foundation

/// The agent's first frame after the TLS handshake (`hello`, job 0), whichever side dialed
/// and whichever is the TLS client. It is also the round trip TLS 1.3 needs: a TLS client
/// learns that the server refused its certificate only when it first reads.
///
/// ```json
/// {"protocol": "dpm-agent-channel", "version": 1, "service": "guest-agent",
///  "agent": "db01", "max_frame": 8388608,
///  "enroll": {"code_id": "<16 hex>", "proof": "<64 hex>"}}     // only when enrolling
/// ```
struct AgentHello: Codable {
    static let protocolName = "dpm-agent-channel"
    static let currentVersion = 1

    var `protocol` = AgentHello.protocolName
    var version = AgentHello.currentVersion
    /// What kind of agent this is ("guest-agent", "host-agent"); a server serves one kind per port.
    var service: String
    var agent: String
    var maxFrame: Int
    var enroll: EnrollmentClaim?
}

struct EnrollmentClaim: Codable {
    var codeId: String
    /// `EnrollmentProof.agent`, hex.
    var proof: String
}

/// The server's answer when it admits the agent (`welcome`, job 0). A refusal is an `error`
/// frame instead (`WireError`), after which the server closes the connection.
///
/// ```json
/// {"protocol": "dpm-agent-channel", "version": 1, "server": "dpm01", "agent": "db01",
///  "max_frame": 8388608, "enrolled": true, "enrollment_proof": "<64 hex>"}
/// ```
struct ServerWelcome: Codable {
    var `protocol` = AgentHello.protocolName
    var version = AgentHello.currentVersion
    var server: String
    var agent: String
    var maxFrame: Int
    /// True when this session enrolled the agent.
    var enrolled: Bool
    /// `EnrollmentProof.server`, hex; present when `enrolled`.
    var enrollmentProof: String?
}
