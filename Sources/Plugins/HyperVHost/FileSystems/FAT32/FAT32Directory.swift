import Foundation
import PluginAPI

/// One file or directory in a FAT directory.
struct FAT32DirectoryEntry {
    /// The long name when a valid LFN sequence precedes the short entry.
    var longName: String?
    /// The 8.3 name, with the case the NT lower-case flags ask for.
    var shortName: String
    var attributes: UInt8
    var firstCluster: UInt32
    var size: UInt32
    var modified: Date?
    var accessed: Date?
    var created: Date?
    /// Volume byte offset of the 32-byte short entry (an identifier for entries without clusters).
    var recordOffset: UInt64

    var name: String { longName ?? shortName }
    var isDirectory: Bool { attributes & 0x10 != 0 }
}

/// Parses FAT directory records (32 bytes each):
///
///     0x00 11 short name (8 + 3, space padded; 0x00 first byte: end of directory, 0xE5:
///             deleted, 0x05: a name starting with 0xE5)
///     0x0B  1 attributes (0x01 read-only, 0x02 hidden, 0x04 system, 0x08 volume label,
///             0x10 directory, 0x20 archive; 0x0F: a long-name record)
///     0x0C  1 NT flags (0x08: base name lower case, 0x10: extension lower case)
///     0x0D  1 creation time, 10 ms units (0–199)   0x0E 2 creation time   0x10 2 creation date
///     0x12  2 access date   0x14 2 first cluster (high 16 bits)
///     0x16  2 write time    0x18 2 write date   0x1A 2 first cluster (low)   0x1C 4 size
///
/// Dates: bits 15–9 year − 1980, 8–5 month, 4–0 day. Times: bits 15–11 hours, 10–5 minutes,
/// 4–0 seconds / 2. FAT stores the writer's local time without a zone; dpm reads it as UTC,
/// because the guest's zone is unknown to a backup server (Windows writes local time; Linux
/// writes local time unless mounted with tz=UTC). Times may therefore be off by the guest's
/// UTC offset.
///
/// A long name is stored in records before its short entry, last part first:
///
///     0x00 1 ordinal (1…20; 0x40 marks the last part)   0x01 10 characters 1–5 (UTF-16LE)
///     0x0B 1 attributes 0x0F   0x0D 1 checksum of the short name
///     0x0E 12 characters 6–11   0x1C 4 characters 12–13
///
/// Names end at U+0000 and are padded with U+FFFF. The checksum is
/// `sum = (sum >> 1) + (sum << 7) + byte` (8-bit rotate-right-and-add) over the 11 short-name
/// bytes; a sequence that is incomplete, out of order, or whose checksum does not match its
/// short entry (left behind by a system that only knows 8.3 names) is ignored and the 8.3
/// name is used.
struct FAT32Directory {
    private var parts: [[UInt16]] = []
    private var expected = 0
    private var checksum: UInt8 = 0
    private(set) var entries: [FAT32DirectoryEntry] = []
    private(set) var volumeLabel: String?
    private(set) var ended = false

    /// Consumes one 32-byte record at volume offset `offset`.
    mutating func add(_ record: ArraySlice<UInt8>, offset: UInt64) {
        let r = Array(record)
        guard r.count == 32, !ended else { return }
        if r[0] == 0x00 { ended = true; return }
        if r[0] == 0xE5 { resetLongName(); return }
        if r[11] & 0x3F == 0x0F {
            addLongNamePart(r)
            return
        }
        defer { resetLongName() }
        if r[11] & 0x08 != 0 {
            if r[11] & 0x10 == 0, volumeLabel == nil { volumeLabel = FAT32BootSector.cleanLabel(Array(r[0..<11])) }
            return
        }
        var nameBytes = Array(r[0..<11])
        if nameBytes == Array(".          ".utf8) || nameBytes == Array("..         ".utf8) { return }
        let sum = FAT32Directory.checksum(nameBytes)
        if nameBytes[0] == 0x05 { nameBytes[0] = 0xE5 }
        let trim = { (bytes: ArraySlice<UInt8>) in Array(bytes.reversed().drop { $0 == 0x20 }.reversed()) }
        var base = FAT32Directory.decodeOEM(trim(nameBytes[0..<8]))
        var ext = FAT32Directory.decodeOEM(trim(nameBytes[8..<11]))
        if r[12] & 0x08 != 0 { base = base.lowercased() }
        if r[12] & 0x10 != 0 { ext = ext.lowercased() }
        var longName: String?
        if !parts.isEmpty, expected == 0, checksum == sum {
            let units = parts.joined().prefix { $0 != 0 }
            let text = String(decoding: Array(units), as: UTF16.self)
            if !text.isEmpty { longName = text }
        }
        entries.append(FAT32DirectoryEntry(
            longName: longName, shortName: ext.isEmpty ? base : base + "." + ext, attributes: r[11],
            firstCluster: UInt32(r.le16(0x14)) << 16 | UInt32(r.le16(0x1A)), size: r.le32(0x1C),
            modified: FAT32Directory.date(r.le16(0x18), r.le16(0x16)),
            accessed: FAT32Directory.date(r.le16(0x12), 0),
            created: FAT32Directory.date(r.le16(0x10), r.le16(0x0E), centiseconds: r[0x0D]),
            recordOffset: offset))
    }

    private mutating func resetLongName() {
        parts = []
        expected = 0
    }

    private mutating func addLongNamePart(_ r: [UInt8]) {
        let ordinal = Int(r[0] & 0x1F)
        let units = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30].map { r.le16($0) }
        if r[0] & 0x40 != 0 {
            guard (1...20).contains(ordinal) else { resetLongName(); return }
            parts = Array(repeating: [], count: ordinal)
            parts[ordinal - 1] = units
            expected = ordinal - 1
            checksum = r[13]
        } else if expected > 0, ordinal == expected, r[13] == checksum {
            parts[ordinal - 1] = units
            expected -= 1
        } else {
            resetLongName()
        }
    }

    /// The LFN checksum of an 11-byte short name (as stored, before the 0x05 substitution).
    static func checksum(_ name: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for byte in name { sum = (sum >> 1 | sum << 7) &+ byte }
        return sum
    }

    /// Decodes short-name bytes: ASCII, and code page 437 (the usual OEM code page) above 0x7F.
    static func decodeOEM(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes {
            if byte < 0x80 {
                text.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                text.unicodeScalars.append(codePage437High[Int(byte - 0x80)])
            }
        }
        return text
    }

    /// Code page 437, bytes 0x80–0xFF.
    static let codePage437High: [UnicodeScalar] = Array(
        "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{A0}".unicodeScalars)

    /// A FAT date and time as a UTC instant; nil when the date is zero or invalid.
    static func date(_ date: UInt16, _ time: UInt16, centiseconds: UInt8 = 0) -> Date? {
        let year = 1980 + Int(date >> 9), month = Int(date >> 5 & 0x0F), day = Int(date & 0x1F)
        let hour = Int(time >> 11), minute = Int(time >> 5 & 0x3F), second = Int(time & 0x1F) * 2
        guard date != 0, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60,
              centiseconds < 200 else { return nil }
        // Days from 1970-01-01 to the civil date (proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400, yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = Double(days * 86_400 + hour * 3600 + minute * 60 + second) + Double(centiseconds) / 100
        return Date(timeIntervalSince1970: seconds)
    }
}
