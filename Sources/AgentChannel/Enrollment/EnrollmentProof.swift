import Digests
import Foundation

/// The proofs of enrollment: each side shows it knows the code, bound to both public keys as
/// that side saw them in the TLS handshake.
///
/// ```
/// agent proof  = HMAC-SHA-256(code key, "dpm-enroll-agent/v1" ‖ 0x00 ‖ agent name ‖ 0x00 ‖ agent pin ‖ server pin)
/// server proof = HMAC-SHA-256(code key, "dpm-enroll-server/v1" ‖ 0x00 ‖ agent name ‖ 0x00 ‖ server pin ‖ agent pin)
/// ```
/// Pins are the 32 raw bytes; proofs travel as 64 hex digits. A man in the middle that
/// terminates TLS shows each side its own key, so each side's view of the pins differs from
/// the other's and neither proof verifies: both sides detect it, each on its own.
enum EnrollmentProof {
    static func agent(key: [UInt8], agentName: String, agentPin: KeyPin, serverPin: KeyPin) -> [UInt8] {
        ChannelCrypto.hmacSHA256(key: key, message("dpm-enroll-agent/v1", agentName, agentPin, serverPin))
    }

    static func server(key: [UInt8], agentName: String, agentPin: KeyPin, serverPin: KeyPin) -> [UInt8] {
        ChannelCrypto.hmacSHA256(key: key, message("dpm-enroll-server/v1", agentName, serverPin, agentPin))
    }

    /// Compares a received hex proof with the expected one in constant time.
    static func matches(_ received: String?, _ expected: [UInt8]) -> Bool {
        guard let received, let digest = ChunkDigest(hex: received.lowercased()) else { return false }
        return ChannelCrypto.constantTimeEqual(digest.raw, expected)
    }

    static func hex(_ proof: [UInt8]) -> String {
        proof.withUnsafeBytes { ChunkDigest($0).hex }
    }

    private static func message(_ tag: String, _ name: String, _ first: KeyPin, _ second: KeyPin) -> [UInt8] {
        Array(tag.utf8) + [0] + Array(name.utf8) + [0] + first.raw + second.raw
    }
}
