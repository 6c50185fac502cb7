import Foundation
import PluginAPI

/// One inode, as stored in its group's inode table (s_inode_size bytes, little-endian).
///
///     0x00 2 i_mode (type in the top 4 bits, permissions below)
///     0x02 2 i_uid (low 16 bits)      0x04 4 i_size_lo
///     0x08 4 i_atime  0x0C 4 i_ctime  0x10 4 i_mtime   (signed seconds since 1970)
///     0x18 2 i_gid (low 16 bits)      0x1A 2 i_links_count
///     0x20 4 i_flags                  0x28 60 i_block (extent tree root, block map,
///                                             inline data or fast symlink target)
///     0x6C 4 i_size_high              0x78 2 i_uid_high   0x7A 2 i_gid_high
///     0x80 2 i_extra_isize (bytes used after the first 128; the fields below exist only
///            when it covers them)
///     0x84 4 i_ctime_extra  0x88 4 i_mtime_extra  0x8C 4 i_atime_extra
///     0x90 4 i_crtime       0x94 4 i_crtime_extra
///
/// An extra time word holds in bits 0–1 an epoch that extends the sign-extended 32-bit seconds
/// by multiples of 2^32 (dates up to 2446), and nanoseconds in bits 2–31. `Date` keeps them
/// as a Double, so sub-microsecond precision is rounded for present-day dates.
///
/// After i_extra_isize comes the in-inode extended-attribute area, used here only for the
/// "system.data" attribute of inline data: a 4-byte magic 0xEA020000, then entries
/// (0 e_name_len, 1 e_name_index, 2 e_value_offs (from the first entry), 4 e_value_inum,
/// 8 e_value_size, 12 e_hash, 16 name, padded to 4 bytes) ended by 4 zero bytes.
struct Ext4Inode {
    enum Flag {
        static let encrypted: UInt32 = 0x800, hashedIndex: UInt32 = 0x1000, extents: UInt32 = 0x80000
        static let inlineData: UInt32 = 0x1000_0000, caseFold: UInt32 = 0x4000_0000
    }

    enum FileType {
        static let mask: UInt16 = 0xF000, regular: UInt16 = 0x8000, directory: UInt16 = 0x4000, symlink: UInt16 = 0xA000
    }

    let number: UInt32
    let raw: [UInt8]
    let mode: UInt16
    let uid: UInt32
    let gid: UInt32
    let size: UInt64
    let flags: UInt32
    let linkCount: UInt16
    /// i_extra_isize, checked to fit in the inode (0 for 128-byte inodes).
    let extraSize: Int

    init(number: UInt32, raw: [UInt8]) throws {
        guard raw.count >= 128 else { throw PluginError(.corrupt, "ext4: inode \(number): only \(raw.count) bytes") }
        self.number = number
        self.raw = raw
        mode = raw.le16(0x00)
        uid = UInt32(raw.le16(0x02)) | UInt32(raw.le16(0x78)) << 16
        gid = UInt32(raw.le16(0x18)) | UInt32(raw.le16(0x7A)) << 16
        size = UInt64(raw.le32(0x04)) | UInt64(raw.le32(0x6C)) << 32
        flags = raw.le32(0x20)
        linkCount = raw.le16(0x1A)
        if raw.count > 128 {
            extraSize = Int(raw.le16(0x80))
            guard 128 + extraSize <= raw.count, extraSize % 4 == 0 else {
                throw PluginError(.corrupt, "ext4: inode \(number): extra size \(extraSize) does not fit in a \(raw.count)-byte inode")
            }
        } else {
            extraSize = 0
        }
    }

    var fileType: UInt16 { mode & FileType.mask }
    var isDirectory: Bool { fileType == FileType.directory }
    var isRegular: Bool { fileType == FileType.regular }
    var isSymlink: Bool { fileType == FileType.symlink }
    var usesExtents: Bool { flags & Flag.extents != 0 }
    var hasInlineData: Bool { flags & Flag.inlineData != 0 }
    var isEncrypted: Bool { flags & Flag.encrypted != 0 }
    /// The 60-byte i_block area.
    var blockArea: [UInt8] { raw.bytes(0x28, 60) }

    var kind: FileSystemEntry.Kind {
        switch fileType {
        case FileType.regular: return .file
        case FileType.directory: return .directory
        case FileType.symlink: return .symlink
        default: return .other
        }
    }

    /// Permission bits with set-uid, set-gid and sticky (mode & 0o7777).
    var permissions: UInt32 { UInt32(mode & 0o7777) }

    var modified: Date? { time(0x10, extra: 0x88) }
    var accessed: Date? { time(0x08, extra: 0x8C) }
    var changed: Date? { time(0x0C, extra: 0x84) }
    /// Creation time exists only in large inodes; zero means "not recorded".
    var created: Date? {
        guard hasExtraField(0x90), raw.le32(0x90) != 0 || (hasExtraField(0x94) && raw.le32(0x94) != 0) else { return nil }
        return time(0x90, extra: 0x94)
    }

    /// True when i_extra_isize covers the 4-byte field at `offset`.
    private func hasExtraField(_ offset: Int) -> Bool { offset + 4 <= 128 + extraSize }

    private func time(_ offset: Int, extra: Int) -> Date? {
        var seconds = Int64(Int32(bitPattern: raw.le32(offset)))
        var nanoseconds: Int64 = 0
        if hasExtraField(extra) {
            let word = raw.le32(extra)
            seconds += Int64(word & 3) << 32
            nanoseconds = Int64(word >> 2)
            if nanoseconds > 999_999_999 { nanoseconds = 0 }  // damaged: keep the seconds
        }
        return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
    }

    /// The kernel's rule: a symlink whose i_blocks (0x1C, high 16 bits at 0x74) counts no block
    /// but its extended-attribute block (i_file_acl at 0x68, high at 0x76) keeps its target in
    /// i_block ("fast"); otherwise the target is file data.
    func isFastSymlink(blockSize: Int) -> Bool {
        guard isSymlink, !hasInlineData else { return false }
        let blocks = UInt64(raw.le32(0x1C)) | UInt64(raw.le16(0x74)) << 32
        let attributeBlock = UInt64(raw.le32(0x68)) | UInt64(raw.le16(0x76)) << 32
        let hugeFile: UInt32 = 0x40000  // i_blocks counts file-system blocks, not 512-byte units
        let attributeUnits: UInt64 = attributeBlock == 0 ? 0 : (flags & hugeFile != 0 ? 1 : UInt64(blockSize / 512))
        return blocks == attributeUnits
    }

    /// The value of the in-inode "system.data" attribute (the part of inline data beyond the
    /// 60 bytes of i_block), or nil when there is none.
    func inlineAttributeValue() throws -> [UInt8]? {
        let start = 128 + extraSize
        guard raw.count > 128, start + 4 <= raw.count, raw.le32(start) == 0xEA02_0000 else { return nil }
        let first = start + 4
        var position = first
        while position + 16 <= raw.count {
            if raw.le32(position) == 0 { break }
            let nameLength = Int(raw[position]), index = raw[position + 1]
            let valueOffset = Int(raw.le16(position + 2)), valueSize = Int(raw.le32(position + 8))
            guard position + 16 + nameLength <= raw.count else {
                throw PluginError(.corrupt, "ext4: inode \(number): in-inode attribute at byte \(position) overruns the inode")
            }
            if index == 7, raw.bytes(position + 16, nameLength) == Array("data".utf8) {
                guard raw.le32(position + 4) == 0 else {
                    throw PluginError(.unsupported, "ext4: inode \(number): the system.data attribute is stored in attribute inode \(raw.le32(position + 4)), which dpm does not read")
                }
                guard first + valueOffset + valueSize <= raw.count else {
                    throw PluginError(.corrupt, "ext4: inode \(number): the system.data attribute (\(valueSize) bytes at \(valueOffset)) lies outside the inode")
                }
                return raw.bytes(first + valueOffset, valueSize)
            }
            position += (16 + nameLength + 3) & ~3
        }
        return nil
    }

    /// The whole inline content: i_block followed by system.data, cut to `size`.
    func inlineData() throws -> [UInt8] {
        let content = blockArea + (try inlineAttributeValue() ?? [])
        guard size <= UInt64(content.count) else {
            throw PluginError(.corrupt, "ext4: inode \(number): inline data holds \(content.count) bytes but the size is \(size)")
        }
        return Array(content.prefix(Int(size)))
    }
}
