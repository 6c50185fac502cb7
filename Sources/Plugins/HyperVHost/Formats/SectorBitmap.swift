import Foundation

/// A per-sector presence bitmap of one block, as differencing VHDX and VHD files keep them.
///
/// Bits are stored here least-significant-bit first: bit `i % 8` of byte `i / 8` describes
/// sector `i`. That is VHDX's order. VHD stores the most significant bit first (bit 7 of byte 0
/// is sector 0); `init(msbFirst:)` converts such a bitmap once when it is loaded, so the hot
/// loops only ever handle one order.
///
/// `forEachRun` reports maximal runs of equal bits, skipping 64 sectors at a time through
/// all-set or all-clear words, so a read never walks sector by sector through uniform areas.
struct SectorBitmap {
    private(set) var bytes: [UInt8]

    /// Wraps a bitmap in VHDX (LSB-first) order.
    init(lsbFirst bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Converts a bitmap in VHD (MSB-first) order.
    init(msbFirst bytes: [UInt8]) {
        self.bytes = bytes.map { SectorBitmap.reversedBits[Int($0)] }
    }

    /// An all-clear bitmap for `sectors` sectors.
    init(sectors: Int) {
        bytes = [UInt8](repeating: 0, count: (sectors + 7) / 8)
    }

    private static let reversedBits: [UInt8] = (0..<256).map { value in
        var result: UInt8 = 0
        for bit in 0..<8 where value & (1 << bit) != 0 { result |= UInt8(0x80 >> bit) }
        return result
    }

    /// The number of sectors the bitmap can describe.
    var capacity: Int { bytes.count * 8 }

    /// True when sector `index` is marked present (false beyond the end).
    func isSet(_ index: Int) -> Bool {
        guard index >= 0, index < capacity else { return false }
        return bytes[index >> 3] & (1 << (index & 7)) != 0
    }

    /// Marks sectors [from, to) present.
    mutating func set(from: Int, to: Int) {
        var index = Swift.max(0, from)
        let stop = Swift.min(to, capacity)
        while index < stop {
            if index & 7 == 0 && stop - index >= 8 {
                bytes[index >> 3] = 0xFF
                index += 8
            } else {
                bytes[index >> 3] |= 1 << (index & 7)
                index += 1
            }
        }
    }

    /// The bitmap in VHD (MSB-first) order.
    var msbFirstBytes: [UInt8] { bytes.map { SectorBitmap.reversedBits[Int($0)] } }

    /// 64 bits starting at sector `index` (a multiple of 64), sector `index` in bit 0.
    @inline(__always) private func word(at index: Int) -> UInt64 {
        let byte = index >> 3
        var value: UInt64 = 0
        for i in (0..<8).reversed() { value = value << 8 | UInt64(bytes[byte + i]) }
        return value
    }

    /// The first sector at or after `from` (and before `to`) whose bit differs from `value`.
    private func firstDifferent(from: Int, to: Int, value: Bool) -> Int {
        var index = from
        while index < to {
            if index >= capacity { return value ? index : to }
            if index & 63 == 0 && to - index >= 64 && index + 64 <= capacity {
                let bits = word(at: index)
                let differing = value ? ~bits : bits
                if differing == 0 { index += 64; continue }
                return index + differing.trailingZeroBitCount
            }
            if isSet(index) != value { return index }
            index += 1
        }
        return to
    }

    /// Calls `body(start, end, isSet)` for each maximal run of equal bits within sectors
    /// [from, to), in ascending order. Sectors beyond the bitmap read as clear.
    func forEachRun(from: Int, to: Int, _ body: (Int, Int, Bool) throws -> Void) rethrows {
        var index = Swift.max(0, from)
        while index < to {
            let value = isSet(index)
            let next = firstDifferent(from: index + 1, to: to, value: value)
            try body(index, next, value)
            index = next
        }
    }
}
