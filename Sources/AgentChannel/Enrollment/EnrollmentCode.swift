import Foundation

/// A one-time enrollment code: what the server prints and an operator types on the agent.
///
/// ## Format
/// 20 symbols of Crockford's base32 (`0-9 A-Z` without I, L, O, U), 100 random bits, shown in
/// four groups: `7K3QD-XH2M9-4TVRB-0NW8C`. Parsing ignores case, dashes and spaces and reads
/// O as 0 and I or L as 1, so a code read aloud or mistyped that way still works.
///
/// ## Why 100 bits
/// The code is the key of the enrollment proofs, and a man in the middle who terminates TLS
/// sees one side's proof: it could try every code offline before the code expires. 100 bits
/// put that out of reach; a 6-digit code would not.
///
/// ## What the server stores
/// Never the code itself: its `id` (to find it, and to name it in messages; anyone may see
/// it) and its `key` (the HMAC key of the proofs, as secret as the code):
/// - id  = first 8 bytes, hex, of SHA-256("dpm-enrollment-code-id/v1" ‖ 0x00 ‖ normalized code)
/// - key = SHA-256("dpm-enrollment-code-key/v1" ‖ 0x00 ‖ normalized code)
public struct EnrollmentCode: Sendable, CustomStringConvertible {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    static let length = 20

    /// The 20 symbols, without dashes.
    public let normalized: String

    /// A fresh random code.
    public static func generate() throws -> EnrollmentCode {
        let random = try ChannelCrypto.randomBytes(13)  // 104 bits, of which the first 100 are used
        var symbols: [UInt8] = []
        for index in 0..<length {
            let bit = index * 5
            let pair = Int(random[bit / 8]) << 8 | Int(random[bit / 8 + 1])
            symbols.append(alphabet[(pair >> (11 - bit % 8)) & 31])
        }
        return EnrollmentCode(normalized: String(decoding: symbols, as: UTF8.self))
    }

    private init(normalized: String) { self.normalized = normalized }

    /// Parses what an operator typed.
    public init(parsing text: String) throws {
        var symbols: [UInt8] = []
        for character in text.uppercased().utf8 where character != UInt8(ascii: "-") && character != UInt8(ascii: " ") {
            switch character {
            case UInt8(ascii: "O"): symbols.append(UInt8(ascii: "0"))
            case UInt8(ascii: "I"), UInt8(ascii: "L"): symbols.append(UInt8(ascii: "1"))
            default:
                guard EnrollmentCode.alphabet.contains(character) else {
                    throw ChannelError(.invalid, "an enrollment code holds only 0-9 and A-Z without U (like 7K3QD-XH2M9-4TVRB-0NW8C); check the code printed by the server")
                }
                symbols.append(character)
            }
        }
        guard symbols.count == EnrollmentCode.length else {
            throw ChannelError(.invalid, "an enrollment code has \(EnrollmentCode.length) symbols (like 7K3QD-XH2M9-4TVRB-0NW8C), not \(symbols.count); check the code printed by the server")
        }
        normalized = String(decoding: symbols, as: UTF8.self)
    }

    /// The code as printed: four groups of five.
    public var description: String {
        let symbols = Array(normalized)
        return stride(from: 0, to: symbols.count, by: 5).map { String(symbols[$0..<$0 + 5]) }.joined(separator: "-")
    }

    public var id: String {
        String(ChannelCrypto.sha256(tag: "dpm-enrollment-code-id/v1", Array(normalized.utf8)).hex.prefix(16))
    }

    var key: [UInt8] {
        ChannelCrypto.sha256(tag: "dpm-enrollment-code-key/v1", Array(normalized.utf8)).raw
    }
}
