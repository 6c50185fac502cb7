extension TarHeader {
    /// Parses one 512-byte header block (not an all-zero block; callers test that first).
    /// `offset` locates the block in errors.
    public static func decode(_ block: UnsafeRawBufferPointer, offset: UInt64) throws -> TarHeader {
        guard block.count >= blockSize else { throw PaxError("a header block of \(block.count) bytes is short", offset: offset) }
        var stored = 0
        var computed = 0
        for index in 0..<blockSize { computed += (148..<156).contains(index) ? 0x20 : Int(block[index]) }
        guard let checksum = octal(block, 148, 8) else { throw PaxError("the header checksum field is not octal; this is not a tar archive", offset: offset) }
        stored = Int(checksum)
        guard stored == computed else {
            throw PaxError("header checksum \(stored) does not match its bytes (\(computed)); the archive is damaged or not a tar archive", offset: offset)
        }
        guard let size = octal(block, 124, 12) else { throw PaxError("the size field of a header is not octal", offset: offset) }
        let name = string(block, 0, 100)
        let prefix = string(block, 345, 155)
        let magic = string(block, 257, 6)
        var header = TarHeader(path: magic == "ustar" && !prefix.isEmpty ? prefix + "/" + name : name, size: size)
        header.mode = UInt32(truncatingIfNeeded: octal(block, 100, 8) ?? 0o644)
        header.mtime = Int64(truncatingIfNeeded: octal(block, 136, 12) ?? 0)
        header.uname = string(block, 265, 32)
        header.gname = string(block, 297, 32)
        let flag = block[156]
        header.typeflag = flag
        header.kind = flag == 0 ? .file : (Kind(rawValue: flag) ?? .other)
        return header
    }

    /// Applies pax records (from an 'x' header, over 'g' ones) to this header.
    mutating func apply(_ records: [String: String], offset: UInt64) throws {
        if let path = records["path"] { self.path = path }
        if let text = records["size"] {
            guard let size = UInt64(text) else { throw PaxError("pax record size=\(text) is not a number", offset: offset) }
            self.size = size
        }
        if let text = records["mtime"], let seconds = Double(text.split(separator: ".").first ?? "") { mtime = Int64(seconds) }
        self.records.merge(records) { $1 }
    }

    /// Parses the records of an 'x' or 'g' header's data.
    static func parseRecords(_ bytes: [UInt8], offset: UInt64) throws -> [String: String] {
        var records: [String: String] = [:]
        var position = 0
        while position < bytes.count {
            guard let space = bytes[position...].firstIndex(of: 0x20),
                  let length = Int(String(decoding: bytes[position..<space], as: UTF8.self)),
                  length > space - position + 1, position + length <= bytes.count, bytes[position + length - 1] == 0x0A,
                  let equals = bytes[(space + 1)..<(position + length)].firstIndex(of: UInt8(ascii: "=")) else {
                if bytes[position...].allSatisfy({ $0 == 0 }) { break }
                throw PaxError("a pax extended header record is malformed", offset: offset + UInt64(position))
            }
            let key = String(decoding: bytes[(space + 1)..<equals], as: UTF8.self)
            records[key] = String(decoding: bytes[(equals + 1)..<(position + length - 1)], as: UTF8.self)
            position += length
        }
        return records
    }

    static func string(_ block: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> String {
        let field = block[offset..<offset + width]
        let end = field.firstIndex(of: 0) ?? field.endIndex
        return String(decoding: block[offset..<end], as: UTF8.self)
    }

    /// An octal number field (spaces and NULs around it allowed), or nil if it is not one.
    /// GNU's base-256 form (high bit set) is accepted for large sizes.
    static func octal(_ block: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> UInt64? {
        if block[offset] & 0x80 != 0 {
            var value: UInt64 = 0
            for index in (offset + 1)..<(offset + width) {
                guard value >> 56 == 0 else { return nil }
                value = value << 8 | UInt64(block[index])
            }
            return value
        }
        var value: UInt64 = 0
        var digits = 0
        for index in offset..<(offset + width) {
            let byte = block[index]
            if byte == 0 || byte == 0x20 { if digits > 0 { break } else { continue } }
            guard (0x30...0x37).contains(byte), value >> 60 == 0 else { return nil }
            value = value * 8 + UInt64(byte - 0x30)
            digits += 1
        }
        return value
    }
}
