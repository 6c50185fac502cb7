import Foundation

/// The dynamic disk header of a dynamic or differencing VHD, at the footer's Data Offset
/// (normally 512). 1024 bytes, big-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | Cookie, ASCII `cxsparse` |
/// | 8 | 8 | Data Offset, unused, all ones |
/// | 16 | 8 | Table Offset: file offset of the BAT |
/// | 24 | 4 | Header Version, 0x00010000 |
/// | 28 | 4 | Max Table Entries: BAT entries (blocks) the disk can have |
/// | 32 | 4 | Block Size (default 2 MiB); each block is preceded in the file by its sector bitmap |
/// | 36 | 4 | Checksum: ones' complement of the byte sum of the 1024 bytes, this field taken as zero |
/// | 40 | 16 | Parent Unique Id (differencing): the parent footer's Unique Id |
/// | 56 | 4 | Parent Time Stamp: the parent's modification time, seconds since 2000-01-01 |
/// | 60 | 4 | reserved |
/// | 64 | 512 | Parent Unicode Name, UTF-16BE, the parent's file name |
/// | 576 | 8 · 24 | Parent Locator Entries |
/// | 768 | 256 | reserved |
///
/// A parent locator entry: Platform Code (4), Platform Data Space (4, the space reserved;
/// Windows writes bytes), Platform Data Length (4, bytes), reserved (4), Platform Data Offset (8,
/// file offset). Platform codes: `W2ru` relative path and `W2ku` absolute path (UTF-16LE),
/// `Wi2r`/`Wi2k` (deprecated, ANSI), `MacX` (a file URL, UTF-8), `Mac ` (a Mac OS alias, not
/// followed), 0 for an unused entry.
///
/// The BAT is Max Table Entries big-endian UInt32 values, each the sector number (512-byte
/// units) where the block's sector bitmap starts, 0xFFFFFFFF when the block is not allocated.
/// The bitmap has one bit per 512-byte sector of the block, most significant bit first, and
/// is padded to a multiple of 512 bytes; the block's data follows it.
struct VHDDynamicHeader {
    static let size = 1024

    struct Locator {
        var platformCode: String
        var dataSpace: UInt32
        var dataLength: UInt32
        var dataOffset: UInt64
    }

    var tableOffset: UInt64
    var maxTableEntries: UInt32
    var blockSize: UInt32
    var parentUniqueId: MSGUID = .zero
    var parentTimestamp: UInt32 = 0
    var parentUnicodeName: String = ""
    var locators: [Locator] = []

    /// The size of a block's sector bitmap in the file: one bit per sector, padded to 512 bytes.
    var bitmapSize: UInt64 { ((UInt64(blockSize) / 512 + 7) / 8).roundedUp(toPowerOfTwo: 512) ?? 512 }

    static func parse(_ bytes: [UInt8], path: String) throws -> VHDDynamicHeader {
        guard bytes.count >= size, bytes.matches("cxsparse", at: 0) else {
            throw DiskError.corrupt(path, "dynamic disk header has a bad cookie (expected \"cxsparse\", found \"\(bytes.printable(0, 8))\")")
        }
        let header = Array(bytes[0..<size])
        let stored = header.be32(36), computed = VHDFooter.checksum(header, excluding: 36)
        guard stored == computed else {
            throw DiskError.corrupt(path, "dynamic disk header checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        var locators: [Locator] = []
        for index in 0..<8 {
            let base = 576 + 24 * index
            let code = header.be32(base)
            guard code != 0 else { continue }
            locators.append(Locator(platformCode: header.printable(base, 4), dataSpace: header.be32(base + 4),
                                    dataLength: header.be32(base + 8), dataOffset: header.be64(base + 16)))
        }
        return VHDDynamicHeader(tableOffset: header.be64(16), maxTableEntries: header.be32(28),
                                blockSize: header.be32(32), parentUniqueId: MSGUID(raw: header.bytes(40, 16)),
                                parentTimestamp: header.be32(56),
                                parentUnicodeName: header.utf16(64, 512, bigEndian: true) ?? "",
                                locators: locators)
    }

    /// The 1024-byte on-disk form with a valid checksum.
    func serialized() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDDynamicHeader.size)
        bytes.putASCII("cxsparse", at: 0)
        bytes.putBE64(UInt64.max, at: 8)
        bytes.putBE64(tableOffset, at: 16)
        bytes.putBE32(0x0001_0000, at: 24)
        bytes.putBE32(maxTableEntries, at: 28)
        bytes.putBE32(blockSize, at: 32)
        bytes.put(parentUniqueId.bytes, at: 40)
        bytes.putBE32(parentTimestamp, at: 56)
        bytes.putUTF16(parentUnicodeName, at: 64, maxBytes: 512, bigEndian: true)
        for (index, locator) in locators.prefix(8).enumerated() {
            let base = 576 + 24 * index
            bytes.putASCII(String(locator.platformCode.prefix(4)), at: base)
            bytes.putBE32(locator.dataSpace, at: base + 4)
            bytes.putBE32(locator.dataLength, at: base + 8)
            bytes.putBE64(locator.dataOffset, at: base + 16)
        }
        bytes.putBE32(VHDFooter.checksum(bytes, excluding: 36), at: 36)
        return bytes
    }

    /// The paths the locators record, read from the file: relative ones (`W2ru`, `Wi2r`) and
    /// absolute ones (`W2ku`, `Wi2k`, `MacX`), each in locator order.
    func parentPaths(from file: FileReader) throws -> (relative: [String], absolute: [String]) {
        var relative: [String] = [], absolute: [String] = []
        for locator in locators {
            guard locator.dataLength > 0, locator.dataLength <= 64 * 1024,
                  let data = try file.readBytesIfPresent(at: locator.dataOffset, count: Int(locator.dataLength)) else {
                continue
            }
            switch locator.platformCode {
            case "W2ru": if let text = data.utf16(0, data.count, bigEndian: false) { relative.append(text) }
            case "W2ku": if let text = data.utf16(0, data.count, bigEndian: false) { absolute.append(text) }
            case "Wi2r": relative.append(String(decoding: data.prefix { $0 != 0 }, as: UTF8.self))
            case "Wi2k": absolute.append(String(decoding: data.prefix { $0 != 0 }, as: UTF8.self))
            case "MacX":
                let url = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                if let parsed = URL(string: url), parsed.isFileURL { absolute.append(parsed.path) }
            default: continue
            }
        }
        return (relative, absolute)
    }
}
