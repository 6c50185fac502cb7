import Foundation
import PluginAPI

/// Builds the `PluginError`s the NTFS reader throws.
///
/// Every message starts with `NTFS:` and names the object, for example
/// `NTFS: MFT record 1234: attribute at offset 0x1f8 runs past the record`, so that a recovery
/// job log says which structure of the guest volume is damaged.
enum NTFSError {
    /// The volume contradicts the on-disk format (bad signature, offset, size, count, loop…).
    static func corrupt(_ message: String) -> PluginError { PluginError(.corrupt, "NTFS: \(message)") }
    /// Valid NTFS using a feature this reader does not implement (EFS, WOF, dedup…).
    static func unsupported(_ message: String) -> PluginError { PluginError(.unsupported, "NTFS: \(message)") }
    /// The caller asked for something impossible (reading a directory, past the end…).
    static func invalid(_ message: String) -> PluginError { PluginError(.invalid, "NTFS: \(message)") }
    /// A path component does not exist.
    static func notFound(_ message: String) -> PluginError { PluginError(.notFound, "NTFS: \(message)") }
}

/// Hexadecimal for messages: `0x1f8`.
func ntfsHex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

/// NTFS file references and times.
enum NTFSReference {
    /// A file reference is 8 bytes: the MFT record number in the low 48 bits and the record's
    /// sequence number (its reuse count) in the high 16 bits.
    static func record(_ reference: UInt64) -> UInt64 { reference & 0x0000_FFFF_FFFF_FFFF }
    static func sequence(_ reference: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: reference >> 48) }
}

enum NTFSTime {
    /// 100 ns intervals between 1601-01-01 (the NTFS epoch) and 1970-01-01.
    static let unixEpoch: Int64 = 116_444_736_000_000_000

    /// An NTFS time (unsigned 64-bit count of 100 ns intervals since 1601-01-01 UTC) as a
    /// `Date`; 0 ("never set") is nil.
    static func date(_ raw: UInt64) -> Date? {
        guard raw != 0 else { return nil }
        let since1970 = Int64(bitPattern: raw) &- unixEpoch
        let seconds = since1970 / 10_000_000
        let remainder = since1970 % 10_000_000
        return Date(timeIntervalSince1970: Double(seconds) + Double(remainder) / 10_000_000)
    }

    /// The NTFS time of a `Date` (for tests and tools).
    static func raw(_ date: Date) -> UInt64 {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        let hundreds = Int64(((interval - seconds) * 10_000_000).rounded())
        return UInt64(bitPattern: Int64(seconds) * 10_000_000 + hundreds + unixEpoch)
    }
}

/// Names as NTFS stores them: counted UTF-16LE code units, not NUL-terminated, any 16-bit value
/// allowed (unpaired surrogates decode as U+FFFD).
enum NTFSName {
    /// The `count` UTF-16 code units at `offset` of `bytes` (the caller checked the bounds).
    static func units(_ bytes: [UInt8], at offset: Int, count: Int) -> [UInt16] {
        guard offset >= 0, count >= 0, offset <= bytes.count - 2 * count else { return [] }
        var units = [UInt16](repeating: 0, count: count)
        for index in 0..<count {
            units[index] = UInt16(bytes[offset + 2 * index]) | UInt16(bytes[offset + 2 * index + 1]) << 8
        }
        return units
    }

    /// Decodes UTF-16 code units, surrogate pairs included.
    static func string(_ units: [UInt16]) -> String {
        String(decoding: units, as: UTF16.self)
    }
}

/// Update sequence arrays ("fixups"), which protect multi-sector records ($MFT FILE records and
/// INDX index blocks) against torn writes.
///
/// Header fields used (same offsets in FILE and INDX records):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | magic ("FILE", "INDX") |
/// | 0x04 | 2 | offset of the update sequence array (USA) |
/// | 0x06 | 2 | USA entries: 1 + record size / 512 |
///
/// The USA starts with the update sequence number (USN), followed by one saved word per
/// 512-byte stride of the record. When the record was written, the last 2 bytes of every stride
/// were replaced by the USN and the original bytes saved in the array. Reading reverses that: a
/// stride whose last word is not the USN was not written completely (a torn write), and the
/// record must not be trusted. The stride is 512 bytes whatever the sector size.
enum NTFSFixups {
    static let stride = 512

    /// Checks and removes the fixups of `record` in place; `what` names it in messages.
    static func apply(_ record: inout [UInt8], magic: String, what: @autoclosure () -> String) throws {
        guard record.matches(magic, at: 0) else {
            if record.matches("BAAD", at: 0) {
                throw NTFSError.corrupt("\(what()) is marked BAAD (a torn write found by chkdsk)")
            }
            if record.prefix(4).allSatisfy({ $0 == 0 }) {
                throw NTFSError.corrupt("\(what()) is empty (all zeros where a \(magic) record should be)")
            }
            throw NTFSError.corrupt("\(what()) has signature \"\(record.printable(0, 4))\", not \"\(magic)\"")
        }
        let usaOffset = Int(record.le16(4))
        let usaCount = Int(record.le16(6))
        let strides = record.count / stride
        guard record.count % stride == 0, usaCount == strides + 1 else {
            throw NTFSError.corrupt("\(what()): update sequence array has \(usaCount) entries; a \(record.count)-byte record needs \(strides + 1)")
        }
        guard usaOffset >= 8, usaOffset % 2 == 0, usaOffset + 2 * usaCount <= stride - 2 else {
            throw NTFSError.corrupt("\(what()): update sequence array at offset \(ntfsHex(usaOffset)) lies outside the record header")
        }
        let usn = record.le16(usaOffset)
        for index in 1..<usaCount {
            let end = index * stride - 2
            guard record.le16(end) == usn else {
                throw NTFSError.corrupt("\(what()) is torn: sector \(index - 1) of \(strides) ends with \(ntfsHex(record.le16(end))), not the update sequence number \(ntfsHex(usn)) (an interrupted write)")
            }
            record[end] = record[usaOffset + 2 * index]
            record[end + 1] = record[usaOffset + 2 * index + 1]
        }
    }
}
