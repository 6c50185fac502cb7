import Foundation

/// The on-disk format of one stored chunk, `store/chunks/XX/DIGEST` (XX = the digest's
/// first two hex digits, DIGEST = all 64).
///
/// A blob is a 48-byte header followed by the payload. Integers are little-endian.
///
///     offset size  field
///     0      4     magic "DPMC"
///     4      1     version = 1
///     5      1     compression: 0 = none, 1 = zstd (one zstd frame)
///     6      1     encryption: 0 = none, 1 = AES-256-GCM
///     7      1     reserved, 0
///     8      4     plain length: bytes of the chunk after decryption and decompression
///     12     4     payload length: bytes after the header
///     16     12    GCM nonce (zeros when not encrypted)
///     28     16    GCM tag (zeros when not encrypted)
///     44     4     CRC-32 (zlib polynomial) of bytes 0..<44, guarding the header itself
///
/// Reading: check magic, version and header CRC; decrypt the payload with AES-256-GCM
/// (key: StoreKeys.encryption, additional authenticated data: the 32 raw digest bytes
/// followed by header bytes 0..<16) when encrypted; then decompress when compressed. The
/// result must be `plain length` bytes whose SHA-256 (or, in an encrypted store,
/// HMAC-SHA-256 under StoreKeys.mac) equals the file's name. A reader also checks that the
/// payload length is the file size − 48, that the plain length equals the length of the
/// index entry that names the chunk, and that the encryption flag matches the store's
/// config.json (a mismatch is damage). Compression is skipped when it
/// would not save space, so random data costs no decompression.
public enum ChunkBlob {
    public static let headerSize = 48
    static let magic: [UInt8] = Array("DPMC".utf8)

    public struct Header: Equatable {
        public var compressed: Bool
        public var encrypted: Bool
        public var plainLength: Int
        public var payloadLength: Int
        public var nonce: [UInt8]
        public var tag: [UInt8]

        /// The 48 header bytes, CRC included.
        public func encode() -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: ChunkBlob.headerSize)
            bytes.replaceSubrange(0..<4, with: ChunkBlob.magic)
            bytes[4] = 1
            bytes[5] = compressed ? 1 : 0
            bytes[6] = encrypted ? 1 : 0
            LittleEndian.put(UInt32(plainLength), into: &bytes, at: 8)
            LittleEndian.put(UInt32(payloadLength), into: &bytes, at: 12)
            if encrypted {
                // Copied byte by byte: a nonce or tag not yet known (empty) leaves zeros.
                for (index, byte) in nonce.prefix(12).enumerated() { bytes[16 + index] = byte }
                for (index, byte) in tag.prefix(16).enumerated() { bytes[28 + index] = byte }
            }
            LittleEndian.put(CRC32.checksum(bytes[0..<44]), into: &bytes, at: 44)
            return bytes
        }

        /// Parses and checks a header; `what` names the blob in errors.
        public static func decode(_ raw: UnsafeRawBufferPointer, what: String) throws -> Header {
            guard raw.count >= ChunkBlob.headerSize else {
                throw HostError(.corrupt, "\(what): \(raw.count) bytes is too short for a chunk header")
            }
            let bytes = Array(raw[0..<ChunkBlob.headerSize])
            guard Array(bytes[0..<4]) == ChunkBlob.magic else { throw HostError(.corrupt, "\(what): not a dpm chunk (bad magic)") }
            guard bytes[4] == 1 else { throw HostError(.corrupt, "\(what): chunk format version \(bytes[4]) is unknown") }
            guard LittleEndian.uint32(bytes, at: 44) == CRC32.checksum(bytes[0..<44]) else {
                throw HostError(.corrupt, "\(what): chunk header checksum mismatch")
            }
            guard bytes[5] <= 1, bytes[6] <= 1 else { throw HostError(.corrupt, "\(what): unknown compression or encryption") }
            return Header(compressed: bytes[5] == 1, encrypted: bytes[6] == 1,
                          plainLength: Int(LittleEndian.uint32(bytes, at: 8)), payloadLength: Int(LittleEndian.uint32(bytes, at: 12)),
                          nonce: Array(bytes[16..<28]), tag: Array(bytes[28..<44]))
        }

        /// The additional authenticated data of an encrypted payload.
        public static func aad(digest: ChunkDigest, header: [UInt8]) -> [UInt8] {
            digest.raw + Array(header[0..<16])
        }
    }
}

/// Little-endian integer helpers for the on-disk formats.
public enum LittleEndian {
    public static func put<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for index in 0..<raw.count { bytes[offset + index] = raw[index] }
        }
    }

    public static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public static func uint32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        read(bytes, at: offset)
    }

    public static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        read(bytes, at: offset)
    }

    public static func read<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int) -> T {
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + index]) }
        return value
    }
}

/// CRC-32 with the zlib polynomial (0xEDB88320, reflected), as `cksum -a crc32b` and zlib's crc32().
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
