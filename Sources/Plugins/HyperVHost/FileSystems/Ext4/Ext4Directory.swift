import Foundation
import PluginAPI

/// One name in a directory.
struct Ext4DirectoryEntry {
    var name: [UInt8]
    var inode: UInt32
    /// ext4_dir_entry_2 file type (1 file, 2 directory, 7 symlink, 3–6 devices, fifo,
    /// socket); 0 when the file system lacks the filetype feature.
    var fileType: UInt8

    var kind: FileSystemEntry.Kind {
        switch fileType {
        case 1: return .file
        case 2: return .directory
        case 7: return .symlink
        default: return .other
        }
    }

    /// The name decoded as UTF-8 (invalid sequences become U+FFFD).
    var decodedName: String { String(decoding: name, as: UTF8.self) }
}

/// Reads the names of a directory.
///
/// A directory's blocks hold a packed list of records (ext4_dir_entry_2):
///
///     0x0 4 inode (0: unused slot)   0x4 2 rec_len (distance to the next record)
///     0x6 1 name_len                 0x7 1 file_type (filetype feature; else unused)
///     0x8   name (name_len bytes, not NUL-terminated)
///
/// rec_len is a multiple of 4, at least 8 + name_len, and records never cross a block; with
/// 64 KiB blocks the value 65535 (or 0) stands for a whole block and the low two bits hold
/// bits 16–17. A checksum tail (inode 0, rec_len 12, type 0xDE) is skipped like any unused
/// slot.
///
/// Hashed (htree) directories keep the same records in their leaf blocks; the index lives in
/// the ".." record of block 0 and in interior blocks that look like one unused record
/// spanning the block, so scanning every block linearly finds every name without reading the
/// index. An inline directory (inline_data) stores the parent's inode number in the first 4
/// bytes of i_block, records in the remaining 56 bytes, and more records in the in-inode
/// "system.data" attribute.
enum Ext4Directory {
    /// More names than this in one directory means a damaged directory.
    static let maxEntries = 10_000_000

    /// All names except "." and "..", in on-disk order.
    static func entries(_ volume: Ext4Volume, directory inode: Ext4Inode) throws -> [Ext4DirectoryEntry] {
        var result: [Ext4DirectoryEntry] = []
        let hasFileType = volume.superblock.hasFileType
        if inode.hasInlineData {
            try parse(inode.blockArea.bytes(4, 56), hasFileType: hasFileType, inode: inode, place: "inline area", into: &result)
            if let more = try inode.inlineAttributeValue(), !more.isEmpty {
                try parse(more, hasFileType: hasFileType, inode: inode, place: "inline attribute", into: &result)
            }
            return result
        }
        let blockSize = UInt64(volume.blockSize)
        let blockCount = inode.size.divideRoundingUp(blockSize)
        let chunkBlocks: UInt64 = max(1, (1 << 20) / blockSize)
        for run in try volume.runs(of: inode, blocks: 0..<blockCount) where !run.uninitialized {
            var done: UInt64 = 0
            while done < run.count {
                let count = min(chunkBlocks, run.count - done)
                var chunk = [UInt8](repeating: 0, count: Int(count * blockSize))
                try chunk.withUnsafeMutableBytes { try volume.readData(block: run.physical + done, offset: 0, into: $0) }
                for index in 0..<Int(count) {
                    let block = chunk[index * Int(blockSize)..<(index + 1) * Int(blockSize)]
                    try parse(Array(block), hasFileType: hasFileType, inode: inode,
                              place: "logical block \(run.logical + done + UInt64(index))", into: &result)
                }
                done += count
            }
        }
        return result
    }

    /// Parses one block (or inline area) of records.
    static func parse(_ area: [UInt8], hasFileType: Bool, inode: Ext4Inode, place: String,
                      into result: inout [Ext4DirectoryEntry]) throws {
        var position = 0
        while position + 8 <= area.count {
            let number = area.le32(position)
            let stored = Int(area.le16(position + 4))
            let recordLength = stored == 65535 || stored == 0 ? (area.count >= 65536 ? 65536 : stored) : (stored & 0xFFFC) | ((stored & 3) << 16)
            let nameLength = Int(area[position + 6])
            guard recordLength >= 8, recordLength % 4 == 0, position + recordLength <= area.count,
                  8 + nameLength <= recordLength else {
                throw PluginError(.corrupt, "ext4: directory inode \(inode.number), \(place): the record at byte \(position) has length \(stored) (name \(nameLength) bytes), which does not fit")
            }
            if number != 0 && nameLength > 0 {
                let name = area.bytes(position + 8, nameLength)
                if name != [0x2E] && name != [0x2E, 0x2E] {
                    guard result.count < maxEntries else {
                        throw PluginError(.unsupported, "ext4: directory inode \(inode.number) has more than \(maxEntries) entries")
                    }
                    result.append(Ext4DirectoryEntry(name: name, inode: number, fileType: hasFileType ? area[position + 7] : 0))
                }
            }
            position += recordLength
        }
    }
}
