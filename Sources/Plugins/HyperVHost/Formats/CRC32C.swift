import Foundation

/// CRC-32C (Castagnoli), the checksum VHDX uses for its headers, region tables and log entries.
///
/// Parameters: reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF
/// (the check value of the ASCII string "123456789" is 0xE3069283). VHDX computes it over a whole
/// structure with the structure's own 4-byte checksum field taken as zero.
///
/// The implementation is table-driven "slicing by 8": eight 256-entry tables let each step consume
/// eight bytes, which keeps the 64 KiB region tables and megabyte-sized log scans cheap.
struct CRC32C {
    /// The running, not yet inverted, register.
    private var register: UInt32 = 0xFFFF_FFFF

    init() {}

    /// The checksum of everything fed so far.
    var value: UInt32 { ~register }

    /// Eight tables of 256 entries, flattened: entry `t * 256 + i` is table `t`, index `i`.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var crc = UInt32(i)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[i] = crc
        }
        for t in 1..<8 {
            for i in 0..<256 {
                let previous = tables[(t - 1) * 256 + i]
                tables[t * 256 + i] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// Feeds `data` into the checksum.
    mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        var crc = register
        var index = 0
        let count = data.count
        CRC32C.tables.withUnsafeBufferPointer { t in
            while count - index >= 8 {
                let low = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ crc
                let high = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                index += 8
            }
            while index < count {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        register = crc
    }

    /// Feeds a byte array (or a part of one) into the checksum.
    mutating func update(_ bytes: [UInt8], range: Range<Int>? = nil) {
        let range = range ?? 0..<bytes.count
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        bytes.withUnsafeBytes { update(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Feeds `count` zero bytes (used to skip over a checksum field).
    mutating func updateZeros(_ count: Int) {
        let zeros = [UInt8](repeating: 0, count: count)
        update(zeros)
    }

    /// The checksum of `bytes`.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The checksum of `bytes` with the 4-byte field at `fieldOffset` taken as zero, the way every
    /// VHDX structure stores its own checksum.
    static func checksum(_ bytes: [UInt8], zeroingFieldAt fieldOffset: Int) -> UInt32 {
        guard fieldOffset >= 0, fieldOffset + 4 <= bytes.count else { return checksum(bytes) }
        var crc = CRC32C()
        crc.update(bytes, range: 0..<fieldOffset)
        crc.updateZeros(4)
        crc.update(bytes, range: fieldOffset + 4..<bytes.count)
        return crc.value
    }

    /// Stores the checksum of `bytes` (field taken as zero) little-endian into the field.
    static func seal(_ bytes: inout [UInt8], fieldOffset: Int) {
        bytes.putLE32(0, at: fieldOffset)
        bytes.putLE32(checksum(bytes), at: fieldOffset)
    }

    /// True when the little-endian field at `fieldOffset` holds the checksum of `bytes`.
    static func verify(_ bytes: [UInt8], fieldOffset: Int) -> Bool {
        bytes.count >= fieldOffset + 4 && bytes.le32(fieldOffset) == checksum(bytes, zeroingFieldAt: fieldOffset)
    }
}
