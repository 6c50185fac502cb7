import Foundation

/// The constants and the big-endian framing of the NBD protocol (the "newstyle fixed"
/// handshake and structured replies), from the protocol document of the NBD project
/// (doc/proto.md). Everything on the wire is big-endian.
///
/// Handshake, as dpm uses it:
/// 1. server: "NBDMAGIC" (8 bytes), "IHAVEOPT" (8), handshake flags (u16);
///    client: its flags (u32): FIXED_NEWSTYLE | NO_ZEROES.
/// 2. options, each `IHAVEOPT, option (u32), length (u32), data`, answered by one or more
///    replies `0x3e889045565a9 (u64), option (u32), reply type (u32), length (u32), data`:
///    STRUCTURED_REPLY (ACK), SET_META_CONTEXT (META_CONTEXT replies with an id each, then
///    ACK), GO (INFO replies: EXPORT gives size and transmission flags, BLOCK_SIZE the
///    maximum payload; then ACK). Reply types with bit 31 set are errors, with text.
/// 3. transmission: requests `0x25609513 (u32), flags (u16), type (u16), cookie (u64),
///    offset (u64), length (u32)`; structured reply chunks `0x668e33ef (u32), flags (u16),
///    type (u16), cookie (u64), length (u32), payload`, the last one flagged DONE.
enum NBDProtocol {
    static let initialMagic: UInt64 = 0x4E42_444D_4147_4943  // "NBDMAGIC"
    static let optionMagic: UInt64 = 0x4948_4156_454F_5054   // "IHAVEOPT"
    static let optionReplyMagic: UInt64 = 0x0003_E889_0455_65A9
    static let requestMagic: UInt32 = 0x2560_9513
    static let simpleReplyMagic: UInt32 = 0x6744_6698
    static let structuredReplyMagic: UInt32 = 0x668E_33EF

    enum HandshakeFlag { static let fixedNewstyle: UInt16 = 1, noZeroes: UInt16 = 2 }

    enum Option {
        static let abort: UInt32 = 2, go: UInt32 = 7, structuredReply: UInt32 = 8, setMetaContext: UInt32 = 10
    }

    enum Reply {
        static let ack: UInt32 = 1, info: UInt32 = 3, metaContext: UInt32 = 4
        static let errorBit: UInt32 = 1 << 31

        /// A readable name for an error reply type.
        static func errorName(_ type: UInt32) -> String {
            switch type {
            case errorBit | 1: return "unsupported option"
            case errorBit | 2: return "forbidden by the server's policy"
            case errorBit | 3: return "invalid option"
            case errorBit | 4: return "unsupported on this platform"
            case errorBit | 5: return "TLS required"
            case errorBit | 6: return "unknown export"
            case errorBit | 7: return "the server is shutting down"
            case errorBit | 8: return "block size negotiation required"
            case errorBit | 9: return "request too big"
            default: return "error \(type & ~errorBit)"
            }
        }
    }

    enum Info { static let export: UInt16 = 0, blockSize: UInt16 = 3 }

    enum Command { static let read: UInt16 = 0, disconnect: UInt16 = 2, blockStatus: UInt16 = 7 }

    enum ChunkType {
        static let none: UInt16 = 0, offsetData: UInt16 = 1, offsetHole: UInt16 = 2, blockStatus: UInt16 = 5
        static let error: UInt16 = 32769, errorOffset: UInt16 = 32770
        static let errorBit: UInt16 = 1 << 15
    }

    static let replyFlagDone: UInt16 = 1
    /// base:allocation flags: the range is a hole / reads as zeros.
    static let stateHole: UInt32 = 1, stateZero: UInt32 = 2
    /// qemu:dirty-bitmap flag: the range is dirty.
    static let stateDirty: UInt32 = 1

    /// A readable name for an errno value an NBD server reports.
    static func errnoName(_ value: UInt32) -> String {
        switch value {
        case 1: return "EPERM"
        case 5: return "EIO"
        case 12: return "ENOMEM"
        case 22: return "EINVAL"
        case 28: return "ENOSPC"
        case 75: return "EOVERFLOW"
        case 95: return "ENOTSUP"
        case 108: return "ESHUTDOWN"
        default: return "error \(value)"
        }
    }
}

/// Appends big-endian integers and byte strings.
struct NBDWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ text: String) { bytes.append(contentsOf: Array(text.utf8)) }
    /// A string preceded by its length as u32.
    mutating func lengthPrefixed(_ text: String) { u32(UInt32(text.utf8.count)); string(text) }
}

/// Reads big-endian integers from a byte array, failing (never trapping) past its end.
struct NBDReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func u16() -> UInt16? { integer(UInt16.self) }
    mutating func u32() -> UInt32? { integer(UInt32.self) }
    mutating func u64() -> UInt64? { integer(UInt64.self) }

    mutating func take(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= remaining else { return nil }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    mutating func rest() -> [UInt8] { take(remaining) ?? [] }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(bytes[position + index]) }
        position += size
        return value
    }
}
