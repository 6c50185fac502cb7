import Foundation

/// Little- and big-endian field access on byte arrays read from a disk image.
///
/// The getters never trap: a field that would extend past the end of the array reads as zero
/// (or an empty string). Parsers check structure sizes before they read fields, so a zero from
/// a short buffer is never mistaken for real data; the rule only guarantees that a damaged file
/// cannot crash the process. The setters are used by the writers on buffers they allocate and
/// silently ignore out-of-range writes for the same reason.
extension Array where Element == UInt8 {
    @inline(__always) private func has(_ offset: Int, _ size: Int) -> Bool {
        offset >= 0 && size >= 0 && offset <= count - size
    }

    func u8(_ offset: Int) -> UInt8 { has(offset, 1) ? self[offset] : 0 }

    func le16(_ offset: Int) -> UInt16 {
        guard has(offset, 2) else { return 0 }
        return UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    func le32(_ offset: Int) -> UInt32 {
        guard has(offset, 4) else { return 0 }
        var value: UInt32 = 0
        for i in (0..<4).reversed() { value = value << 8 | UInt32(self[offset + i]) }
        return value
    }

    func le64(_ offset: Int) -> UInt64 {
        guard has(offset, 8) else { return 0 }
        var value: UInt64 = 0
        for i in (0..<8).reversed() { value = value << 8 | UInt64(self[offset + i]) }
        return value
    }

    func be16(_ offset: Int) -> UInt16 {
        guard has(offset, 2) else { return 0 }
        return UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func be32(_ offset: Int) -> UInt32 {
        guard has(offset, 4) else { return 0 }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(self[offset + i]) }
        return value
    }

    func be64(_ offset: Int) -> UInt64 {
        guard has(offset, 8) else { return 0 }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(self[offset + i]) }
        return value
    }

    /// `size` bytes at `offset`, or an empty array when out of range.
    func bytes(_ offset: Int, _ size: Int) -> [UInt8] {
        guard has(offset, size) else { return [] }
        return Array(self[offset..<offset + size])
    }

    /// True when the bytes at `offset` equal `ascii` (a signature such as "vhdxfile").
    func matches(_ ascii: String, at offset: Int) -> Bool {
        let expected = Array(ascii.utf8)
        guard has(offset, expected.count) else { return false }
        return self[offset..<offset + expected.count].elementsEqual(expected)
    }

    /// Printable text of a fixed-size ASCII field, for messages (non-printable bytes become '.').
    func printable(_ offset: Int, _ size: Int) -> String {
        String(bytes(offset, size).map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "." })
    }

    /// A UTF-16 string of `size` bytes at `offset`, cut at the first NUL; nil if malformed.
    func utf16(_ offset: Int, _ size: Int, bigEndian: Bool) -> String? {
        guard has(offset, size) else { return nil }
        var units: [UInt16] = []
        units.reserveCapacity(size / 2)
        var i = offset
        while i + 1 < offset + size {
            let unit = bigEndian ? be16(i) : le16(i)
            if unit == 0 { break }
            units.append(unit)
            i += 2
        }
        var text = ""
        var iterator = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): text.unicodeScalars.append(scalar)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        return text
    }

    mutating func put(_ value: UInt8, at offset: Int) { if has(offset, 1) { self[offset] = value } }

    mutating func putLE16(_ value: UInt16, at offset: Int) {
        guard has(offset, 2) else { return }
        for i in 0..<2 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    mutating func putLE32(_ value: UInt32, at offset: Int) {
        guard has(offset, 4) else { return }
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    mutating func putLE64(_ value: UInt64, at offset: Int) {
        guard has(offset, 8) else { return }
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    mutating func putBE16(_ value: UInt16, at offset: Int) {
        guard has(offset, 2) else { return }
        for i in 0..<2 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * (1 - i))) }
    }

    mutating func putBE32(_ value: UInt32, at offset: Int) {
        guard has(offset, 4) else { return }
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * (3 - i))) }
    }

    mutating func putBE64(_ value: UInt64, at offset: Int) {
        guard has(offset, 8) else { return }
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * (7 - i))) }
    }

    mutating func put(_ bytes: [UInt8], at offset: Int) {
        guard has(offset, bytes.count) else { return }
        replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }

    mutating func putASCII(_ text: String, at offset: Int) { put(Array(text.utf8), at: offset) }

    /// Encodes `text` as UTF-16 (no terminator) at `offset`, truncated to `maxBytes`.
    mutating func putUTF16(_ text: String, at offset: Int, maxBytes: Int, bigEndian: Bool) {
        var position = offset
        for unit in text.utf16 where position + 2 <= offset + maxBytes {
            if bigEndian { putBE16(unit, at: position) } else { putLE16(unit, at: position) }
            position += 2
        }
    }
}

/// Encodes a string as UTF-16LE bytes (no terminator), as VHDX parent locators and VHD W2ru/W2ku
/// locators store paths.
func utf16LEBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf16.count * 2)
    for unit in text.utf16 {
        bytes.append(UInt8(truncatingIfNeeded: unit))
        bytes.append(UInt8(truncatingIfNeeded: unit >> 8))
    }
    return bytes
}

/// A GUID in Microsoft's on-disk layout, as VHDX (and VHD's unique ids) store them.
///
/// Layout (16 bytes): Data1 (UInt32, little-endian), Data2 (UInt16, little-endian),
/// Data3 (UInt16, little-endian), Data4 (8 bytes, in order). The text form
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` prints Data1, Data2 and Data3 as numbers and Data4
/// byte by byte, so `{2DC27766-F623-4200-9D64-115E9BFD4A08}` is stored as
/// `66 77 C2 2D 23 F6 00 42 9D 64 11 5E 9B FD 4A 08`.
struct MSGUID: Hashable, CustomStringConvertible {
    /// The 16 bytes exactly as stored in the file.
    let bytes: [UInt8]

    static let zero = MSGUID(raw: [UInt8](repeating: 0, count: 16))

    /// Wraps 16 stored bytes.
    init(raw: [UInt8]) {
        var padded = Array(raw.prefix(16))
        while padded.count < 16 { padded.append(0) }
        bytes = padded
    }

    /// A GUID from its text-form parts, for the well-known identifiers:
    /// `MSGUID(0x2DC27766, 0xF623, 0x4200, [0x9D, 0x64, …])` is `2DC27766-F623-4200-9D64-…`.
    init(_ data1: UInt32, _ data2: UInt16, _ data3: UInt16, _ data4: [UInt8]) {
        var raw = [UInt8](repeating: 0, count: 16)
        raw.putLE32(data1, at: 0)
        raw.putLE16(data2, at: 4)
        raw.putLE16(data3, at: 6)
        raw.put(Array(data4.prefix(8)), at: 8)
        self.init(raw: raw)
    }

    /// Reads the 16 bytes at `offset` of `buffer` (zeros when out of range).
    init(_ buffer: [UInt8], at offset: Int) {
        self.init(raw: buffer.bytes(offset, 16))
    }

    /// Parses the text form, with or without braces, in any letter case.
    init?(_ text: String) {
        var hex = text.trimmingCharacters(in: .whitespaces)
        if hex.hasPrefix("{") && hex.hasSuffix("}") { hex = String(hex.dropFirst().dropLast()) }
        let groups = hex.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 5, groups.map(\.count) == [8, 4, 4, 4, 12] else { return nil }
        guard let data1 = UInt32(groups[0], radix: 16), let data2 = UInt16(groups[1], radix: 16),
              let data3 = UInt16(groups[2], radix: 16) else { return nil }
        var raw = [UInt8](repeating: 0, count: 16)
        raw.putLE32(data1, at: 0)
        raw.putLE16(data2, at: 4)
        raw.putLE16(data3, at: 6)
        let tail = Array(groups[3] + groups[4])
        for i in 0..<8 {
            guard let byte = UInt8(String(tail[2 * i...2 * i + 1]), radix: 16) else { return nil }
            raw[8 + i] = byte
        }
        bytes = raw
    }

    /// A new random (version 4) GUID.
    static func random() -> MSGUID {
        let uuid = UUID().uuid
        return MSGUID(raw: [uuid.0, uuid.1, uuid.2, uuid.3, uuid.4, uuid.5, uuid.6, uuid.7,
                            uuid.8, uuid.9, uuid.10, uuid.11, uuid.12, uuid.13, uuid.14, uuid.15])
    }

    var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Lower-case text form without braces.
    var description: String {
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        let data4 = bytes[8..<16].map { hex(UInt64($0), 2) }
        return hex(UInt64(bytes.le32(0)), 8) + "-" + hex(UInt64(bytes.le16(4)), 4) + "-"
            + hex(UInt64(bytes.le16(6)), 4) + "-" + data4[0..<2].joined() + "-" + data4[2..<8].joined()
    }

    /// Text form in braces and upper case, as Hyper-V writes `parent_linkage`.
    var braced: String { "{" + description.uppercased() + "}" }
}
