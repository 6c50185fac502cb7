import Digests
import Foundation

/// What a side pins of its peer: the SHA-256 of the peer's DER-encoded SubjectPublicKeyInfo.
///
/// Pinning the public key rather than the certificate means a peer may re-issue its
/// self-signed certificate (new validity, new serial) without being re-enrolled, while any
/// other key is refused. Written as 64 lowercase hex digits in files and on the wire, and as
/// `sha256:<hex>` in messages.
public struct KeyPin: Hashable, Sendable, Codable, CustomStringConvertible {
    public let sha256: ChunkDigest

    public init(sha256: ChunkDigest) { self.sha256 = sha256 }

    /// Parses 64 hex digits (either case); nil for anything else.
    public init?(hex: String) {
        guard let digest = ChunkDigest(hex: hex.lowercased()) else { return nil }
        sha256 = digest
    }

    /// The pin of a DER SubjectPublicKeyInfo.
    init(subjectPublicKeyInfo der: [UInt8]) {
        sha256 = ChannelCrypto.sha256(der)
    }

    public var hex: String { sha256.hex }
    public var raw: [UInt8] { sha256.raw }
    public var description: String { "sha256:\(hex)" }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let pin = KeyPin(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a key pin must be 64 hex digits, not \(text.prefix(80))"))
        }
        self = pin
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
