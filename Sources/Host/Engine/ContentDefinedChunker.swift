import Foundation

/// Content-defined chunking for byte streams (database dumps, archives): cut points depend
/// on the content, so an insertion shifts only the chunks around it and the rest dedup.
///
/// A gear rolling hash (as in FastCDC) with normalised chunking: no cut before `minimum`
/// (256 KiB), a strict mask up to `average` (1 MiB), a looser one after, and a forced cut
/// at `maximum` (4 MiB). The gear table comes from splitmix64 seeded with a fixed constant,
/// so every dpm cuts identically. The parameters affect deduplication only, never the
/// on-disk format: every entry of the index records its own length.
struct ContentDefinedChunker {
    static let minimum = 256 << 10
    static let average = 1 << 20
    static let maximum = 4 << 20
    static let strictMask: UInt64 = (1 << 22) - 1   // two bits more than average (2^20)
    static let looseMask: UInt64 = (1 << 18) - 1    // two bits fewer

    static let gear: [UInt64] = {
        var state: UInt64 = 0x6470_6d2d_6364_6331 // "dpm-cdc1"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()

    /// The length of the first chunk of `data`, or nil when more data is needed to decide
    /// (no cut point yet, fewer than `maximum` bytes, and more may follow).
    static func cut(_ data: UnsafeRawBufferPointer, atEnd: Bool) -> Int? {
        let count = data.count
        if count <= minimum { return atEnd ? (count > 0 ? count : nil) : nil }
        var hash: UInt64 = 0
        var index = minimum
        let strictEnd = min(count, average)
        let looseEnd = min(count, maximum)
        return gear.withUnsafeBufferPointer { table -> Int? in
            while index < strictEnd {
                hash = (hash << 1) &+ table[Int(data[index])]
                if hash & strictMask == 0 { return index + 1 }
                index += 1
            }
            while index < looseEnd {
                hash = (hash << 1) &+ table[Int(data[index])]
                if hash & looseMask == 0 { return index + 1 }
                index += 1
            }
            if count >= maximum { return maximum }
            return atEnd ? count : nil
        }
    }
}
