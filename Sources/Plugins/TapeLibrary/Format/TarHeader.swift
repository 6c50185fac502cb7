import Foundation

/// The 512-byte ustar header block and pax extended-header records (POSIX.1-2001 pax
/// format, as GNU tar 1.34 writes and reads it with --format=posix).
///
/// Field offsets in a header block: name 0-99, mode 100-107, uid 108-115, gid 116-123,
/// size 124-135, mtime 136-147, chksum 148-155, typeflag 156, linkname 157-256,
/// magic "ustar\0" 257-262, version "00" 263-264, uname 265-296, gname 297-328,
/// devmajor 329-336, devminor 337-344, prefix 345-499. Numbers are octal text; a size
/// whose first byte has the top bit set is base-256 (GNU). The checksum is the sum of all
/// 512 bytes with the checksum field read as spaces.
struct TarHeader: Equatable {
    static let blockSize = 512

    var name: String
    var size: UInt64
    var typeflag: UInt8
    var mode: UInt32 = 0o644
    var mtime: UInt64 = 0
    var uname = ""
    var gname = ""

    /// Regular file types ('0', NUL, '7'): their data is file content.
    var isRegular: Bool { typeflag == 0x30 || typeflag == 0 || typeflag == 0x37 }
    var isExtended: Bool { typeflag == UInt8(ascii: "x") || typeflag == UInt8(ascii: "g") }

    static func isZeroBlock(_ block: ArraySlice<UInt8>) -> Bool { block.allSatisfy { $0 == 0 } }

    /// Parses one header block; nil when it is not a valid ustar/pax header (bad checksum).
    static func parse(_ block: ArraySlice<UInt8>) -> TarHeader? {
        guard block.count == blockSize else { return nil }
        let bytes = Array(block)
        var sum: UInt64 = 0
        for (index, byte) in bytes.enumerated() { sum += (148..<156).contains(index) ? 32 : UInt64(byte) }
        guard let stored = octal(bytes[148..<156]), stored == sum else { return nil }
        func text(_ range: Range<Int>) -> String {
            let field = bytes[range]
            let end = field.firstIndex(of: 0) ?? field.endIndex
            return String(decoding: field[field.startIndex..<end], as: UTF8.self)
        }
        var name = text(0..<100)
        let prefix = text(345..<500)
        if bytes[257..<262].elementsEqual(Array("ustar".utf8)) && !prefix.isEmpty { name = prefix + "/" + name }
        let size: UInt64
        if bytes[124] & 0x80 != 0 {
            var value: UInt64 = 0
            for byte in bytes[125..<136] { value = value << 8 | UInt64(byte) }
            size = value
        } else {
            size = octal(bytes[124..<136]) ?? 0
        }
        return TarHeader(name: name, size: size, typeflag: bytes[156], mode: UInt32(octal(bytes[100..<108]) ?? 0),
                         mtime: octal(bytes[136..<148]) ?? 0, uname: text(265..<297), gname: text(297..<329))
    }

    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var seen = false
        for byte in field {
            if byte == 0 || byte == 32 { if seen { break } else { continue } }
            guard byte >= 48 && byte <= 55 else { return nil }
            value = value << 3 | UInt64(byte - 48)
            seen = true
        }
        return value
    }

    /// The header block. A name longer than 100 bytes is cut here; the caller puts the
    /// full name in a pax `path` record.
    func encoded() -> [UInt8] {
        var block = [UInt8](repeating: 0, count: Self.blockSize)
        func put(_ text: String, _ offset: Int, _ length: Int) {
            for (index, byte) in text.utf8.prefix(length).enumerated() { block[offset + index] = byte }
        }
        func putOctal(_ value: UInt64, _ offset: Int, _ length: Int) {
            put(String(repeating: "0", count: max(0, length - 1 - String(value, radix: 8).count)) + String(value, radix: 8), offset, length - 1)
        }
        put(name, 0, 100)
        putOctal(UInt64(mode), 100, 8)
        putOctal(0, 108, 8)
        putOctal(0, 116, 8)
        if size < 0o77777777777 {
            putOctal(size, 124, 12)
        } else {
            block[124] = 0x80
            for index in 0..<8 { block[135 - index] = UInt8(truncatingIfNeeded: size >> (8 * index)) }
        }
        putOctal(mtime, 136, 12)
        block[156] = typeflag
        put("ustar", 257, 6)
        put("00", 263, 2)
        put(uname, 265, 32)
        put(gname, 297, 32)
        for index in 148..<156 { block[index] = 32 }
        let sum = block.reduce(0) { $0 + Int($1) }
        put(String(repeating: "0", count: max(0, 6 - String(sum, radix: 8).count)) + String(sum, radix: 8), 148, 6)
        block[154] = 0
        block[155] = 32
        return block
    }

    static func padding(_ count: UInt64) -> Int { Int((UInt64(blockSize) - count % UInt64(blockSize)) % UInt64(blockSize)) }
}

/// pax extended-header records: "LEN KEY=VALUE\n", LEN counting the whole record.
enum PaxRecords {
    static func encode(_ records: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in records {
            let body = " \(key)=\(value)\n"
            var length = body.utf8.count + 1
            while String(length).count + body.utf8.count != length { length = String(length).count + body.utf8.count }
            out += Array((String(length) + body).utf8)
        }
        return out
    }

    /// Decodes records; nil when malformed.
    static func decode(_ bytes: [UInt8]) -> [(String, String)]? {
        var records: [(String, String)] = []
        var position = 0
        while position < bytes.count {
            if bytes[position] == 0 { break }
            guard let space = bytes[position...].firstIndex(of: 32),
                  let length = Int(String(decoding: bytes[position..<space], as: UTF8.self)), length > 0,
                  position + length <= bytes.count, bytes[position + length - 1] == 10 else { return nil }
            let body = bytes[(space + 1)..<(position + length - 1)]
            guard let equals = body.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            records.append((String(decoding: body[body.startIndex..<equals], as: UTF8.self),
                            String(decoding: body[(equals + 1)...], as: UTF8.self)))
            position += length
        }
        return records
    }

    /// An extended header ('x', or 'g' for global) followed by its data, padded to blocks.
    static func header(name: String, typeflag: Character, records: [(String, String)]) -> [UInt8] {
        let data = encode(records)
        let header = TarHeader(name: String(name.utf8.prefix(100)) ?? name, size: UInt64(data.count),
                               typeflag: typeflag.asciiValue ?? UInt8(ascii: "x"))
        return header.encoded() + data + [UInt8](repeating: 0, count: TarHeader.padding(UInt64(data.count)))
    }
}

/// Builds small pax members (the label's files, catalogs, volume descriptions).
enum PaxMember {
    /// A regular file member: an 'x' header with `path` and `extra` records, then the
    /// ustar header, then the content padded to 512 bytes.
    static func file(path: String, content: [UInt8], extra: [(String, String)] = [], mtime: Date = Date()) -> [UInt8] {
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let seconds = UInt64(max(0, mtime.timeIntervalSince1970))
        let extended = PaxRecords.header(name: (directory.isEmpty ? "" : directory + "/") + "PaxHeaders/" + base,
                                         typeflag: "x", records: [("path", path)] + extra)
        let header = TarHeader(name: String(path.utf8.prefix(100)) ?? path, size: UInt64(content.count),
                               typeflag: UInt8(ascii: "0"), mtime: seconds, uname: "root", gname: "root")
        return extended + header.encoded() + content + [UInt8](repeating: 0, count: TarHeader.padding(UInt64(content.count)))
    }

    /// The end of an archive: two zero blocks.
    static let endOfArchive = [UInt8](repeating: 0, count: 2 * TarHeader.blockSize)
}
