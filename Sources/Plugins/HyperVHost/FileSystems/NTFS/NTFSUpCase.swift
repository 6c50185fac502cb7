import Foundation
import PluginAPI

/// Case folding for name lookups.
///
/// NTFS compares names by mapping every UTF-16 code unit through the volume's upcase table,
/// $UpCase (MFT record 10): its unnamed $DATA is 65536 little-endian 16-bit values, value i
/// being the uppercase form of code unit i. The table is written at format time, so a volume
/// keeps the case rules of the Windows version that formatted it. When $UpCase is unreadable
/// the reader falls back to Unicode simple uppercase mapping of each BMP code unit (surrogates
/// are left alone, as NTFS does).
struct NTFSUpCase {
    static let entries = 65536
    static let tableSize = 2 * entries

    let table: [UInt16]
    /// True when the table came from the volume.
    let fromVolume: Bool

    /// Parses an upcase table from $UpCase's data.
    init(volumeTable bytes: [UInt8]) throws {
        guard bytes.count == Self.tableSize else {
            throw NTFSError.corrupt("$UpCase (MFT record 10) is \(bytes.count) bytes; the upcase table has \(Self.tableSize)")
        }
        table = bytes.withUnsafeBytes { raw in
            (0..<Self.entries).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        }
        fromVolume = true
    }

    private init(table: [UInt16]) {
        self.table = table
        fromVolume = false
    }

    /// Unicode simple uppercase mapping of every BMP code unit.
    static let unicode: NTFSUpCase = {
        var table = (0..<entries).map { UInt16($0) }
        for unit in 0..<entries {
            guard let scalar = Unicode.Scalar(UInt32(unit)) else { continue }  // surrogates
            if scalar.isASCII {
                if (0x61...0x7A).contains(unit) { table[unit] = UInt16(unit - 0x20) }
                continue
            }
            let upper = scalar.properties.uppercaseMapping.unicodeScalars
            if upper.count == 1, let first = upper.first, first.value < 0x10000 { table[unit] = UInt16(first.value) }
        }
        return NTFSUpCase(table: table)
    }()

    /// `units` with every code unit upcased.
    func fold(_ units: [UInt16]) -> [UInt16] { units.map { table[Int($0)] } }

    /// True when the names are equal ignoring case.
    func equal(_ a: [UInt16], _ b: [UInt16]) -> Bool {
        guard a.count == b.count else { return false }
        for index in a.indices where table[Int(a[index])] != table[Int(b[index])] { return false }
        return true
    }
}
