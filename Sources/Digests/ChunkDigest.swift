import Foundation

/// A 32-byte chunk name: SHA-256 of the plain chunk, or HMAC-SHA-256 in an encrypted store.
/// Shared by the store (Host) and by remote agents (AgentChannel), which name chunks on the
/// wire with the same 32 bytes.
public struct ChunkDigest: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var bytes: (UInt64, UInt64, UInt64, UInt64)

    public static let zero = ChunkDigest(bytes: (0, 0, 0, 0))

    public init(bytes: (UInt64, UInt64, UInt64, UInt64)) { self.bytes = bytes }

    /// Reads 32 bytes at `offset` of `raw`.
    public init(_ raw: UnsafeRawBufferPointer, at offset: Int = 0) {
        var value = ChunkDigest.zero
        withUnsafeMutableBytes(of: &value.bytes) { target in
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + 32]))
        }
        self = value
    }

    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var raw = [UInt8](repeating: 0, count: 32)
        for index in 0..<32 {
            guard let high = ChunkDigest.nibble(utf8[2 * index]), let low = ChunkDigest.nibble(utf8[2 * index + 1]) else { return nil }
            raw[index] = high << 4 | low
        }
        self = raw.withUnsafeBytes { ChunkDigest($0) }
    }

    public static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    public var raw: [UInt8] { withUnsafeBytes(of: bytes) { Array($0) } }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 64)
        withUnsafeBytes(of: bytes) { raw in
            for index in 0..<32 {
                out[2 * index] = digits[Int(raw[index] >> 4)]
                out[2 * index + 1] = digits[Int(raw[index] & 15)]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    public static func == (a: ChunkDigest, b: ChunkDigest) -> Bool {
        a.bytes.0 == b.bytes.0 && a.bytes.1 == b.bytes.1 && a.bytes.2 == b.bytes.2 && a.bytes.3 == b.bytes.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.0)
        hasher.combine(bytes.1)
    }

    public static func < (a: ChunkDigest, b: ChunkDigest) -> Bool { a.hex < b.hex }
}
