import Foundation

/// One member header of a POSIX pax archive (IEEE Std 1003.1 `pax` interchange format,
/// which GNU tar writes with `--format=posix` and reads by default).
///
/// On the wire a member is one or two 512-byte ustar header blocks, then its data padded
/// with zeros to a multiple of 512 bytes:
///
///     [typeflag 'x' header + records]   only when a field does not fit ustar
///     ustar header                      name[100] mode[8] uid[8] gid[8] size[12] mtime[12]
///                                       chksum[8] typeflag[1] linkname[100] "ustar\0" "00"
///                                       uname[32] gname[32] devmajor[8] devminor[8]
///                                       prefix[155] pad[12]
///     data, zero-padded to 512
///
/// Numbers are octal ASCII, NUL-terminated. The checksum is the sum of the header's bytes
/// with the checksum field counted as eight spaces, written as six octal digits, NUL,
/// space. A path longer than the name field is split at a '/' into prefix and name; one
/// that cannot be split, a size of 8 GiB or more, or a non-ASCII path goes into an 'x'
/// extended header as "LEN path=VALUE\n" / "LEN size=VALUE\n" records (LEN counts the
/// whole record, itself included), and the ustar fields then hold a truncated stand-in.
public struct TarHeader: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case file = 0x30            // '0' (also read from '\0')
        case directory = 0x35       // '5'
        case extended = 0x78        // 'x': pax records for the next member
        case globalExtended = 0x67  // 'g': pax records for every later member
        case multiVolume = 0x4D     // 'M': GNU continuation of a member begun on an earlier volume
        case volumeLabel = 0x56     // 'V': GNU volume label
        case other = 0x3F           // anything else; its data is skipped
    }

    public var path: String
    public var size: UInt64
    public var mode: UInt32 = 0o644
    public var mtime: Int64 = 0
    public var kind: Kind = .file
    public var uname = "dpm"
    public var gname = "dpm"
    /// The raw typeflag byte as read (for kinds folded into `.other`).
    public var typeflag: UInt8 = Kind.file.rawValue
    /// pax records that applied to this member when it was read (path, size, GNU.volume.* …).
    public var records: [String: String] = [:]

    public init(path: String, size: UInt64, mode: UInt32 = 0o644, mtime: Int64 = 0, kind: Kind = .file) {
        self.path = path; self.size = size; self.mode = mode; self.mtime = mtime; self.kind = kind
        typeflag = kind.rawValue
    }

    public static let blockSize = 512
    static let maxUstarSize: UInt64 = 0o77777777777

    /// The bytes of this header: one ustar block, preceded by an 'x' header and its
    /// records when `path` or `size` need them, or when `extra` records are given.
    public func encode(extra: [(String, String)] = []) -> [UInt8] {
        var records = extra
        let split = Self.splitPath(path)
        if split == nil { records.append(("path", path)) }
        if size > Self.maxUstarSize { records.append(("size", String(size))) }
        var output: [UInt8] = []
        if !records.isEmpty {
            let body = records.map { Self.record($0.0, $0.1) }.joined()
            let bytes = Array(body.utf8)
            let stand = String(path.utf8.suffix(90).map { $0 < 0x80 ? Character(UnicodeScalar($0)) : "_" })
            var extended = TarHeader(path: "PaxHeaders/" + stand.replacingOccurrences(of: "/", with: "_").suffix(80),
                                     size: UInt64(bytes.count), kind: .extended)
            extended.mtime = mtime
            output += extended.ustarBlock(prefix: "", name: extended.path)
            output += bytes + [UInt8](repeating: 0, count: Self.padding(bytes.count))
        }
        let (prefix, name) = split ?? ("", String(path.suffix(100)))
        output += ustarBlock(prefix: prefix, name: name)
        return output
    }

    /// Zero bytes that pad `count` bytes to a whole block.
    public static func padding<T: BinaryInteger>(_ count: T) -> Int {
        let remainder = Int(UInt64(count) % UInt64(blockSize))
        return remainder == 0 ? 0 : blockSize - remainder
    }

    /// One pax record "LEN key=value\n", LEN counting the whole record.
    static func record(_ key: String, _ value: String) -> String {
        let rest = " \(key)=\(value)\n".utf8.count
        var length = rest + 1
        while String(length).count + rest != length { length = String(length).count + rest }
        return "\(length) \(key)=\(value)\n"
    }

    /// Splits a path into ustar prefix (≤ 155 bytes) and name (≤ 100 bytes), or nil.
    static func splitPath(_ path: String) -> (String, String)? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 > 0 && $0 < 0x80 }) else { return nil }
        if bytes.count <= 100 { return ("", path) }
        for cut in stride(from: min(bytes.count - 1, 155), through: 1, by: -1) where bytes[cut] == UInt8(ascii: "/") {
            if bytes.count - cut - 1 <= 100 && bytes.count - cut - 1 > 0 {
                return (String(decoding: bytes[0..<cut], as: UTF8.self), String(decoding: bytes[(cut + 1)...], as: UTF8.self))
            }
        }
        return nil
    }

    func ustarBlock(prefix: String, name: String) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: Self.blockSize)
        func put(_ text: String, _ offset: Int, _ width: Int) {
            for (index, byte) in text.utf8.prefix(width).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: UInt64, _ offset: Int, _ width: Int) {
            let digits = String(value, radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, offset, width - 1)
        }
        put(name, 0, 100)
        octal(UInt64(mode & 0o7777), 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(min(size, Self.maxUstarSize), 124, 12)
        octal(UInt64(max(0, mtime)), 136, 12)
        block[156] = kind == .other ? typeflag : kind.rawValue
        put("ustar", 257, 6)
        put("00", 263, 2)
        put(uname, 265, 32)
        put(gname, 297, 32)
        octal(0, 329, 8)
        octal(0, 337, 8)
        put(prefix, 345, 155)
        for index in 148..<156 { block[index] = 0x20 }
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - digits.count)) + digits, 148, 6)
        block[154] = 0
        block[155] = 0x20
        return block
    }
}
