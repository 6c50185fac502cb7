import Foundation
import PluginAPI

/// The ext2/ext3/ext4 superblock: 1024 bytes at byte 1024 of the volume, little-endian.
///
/// Fields read here (offset, size, name):
///
///     0x000 4 s_inodes_count           0x004 4 s_blocks_count_lo
///     0x014 4 s_first_data_block       0x018 4 s_log_block_size (block = 1024 << n)
///     0x020 4 s_blocks_per_group       0x024 4 s_clusters_per_group
///     0x028 4 s_inodes_per_group       0x038 2 s_magic (0xEF53)
///     0x048 4 s_creator_os             0x04C 4 s_rev_level (0: fixed 128-byte inodes)
///     0x054 4 s_first_ino              0x058 2 s_inode_size
///     0x05C 4 s_feature_compat         0x060 4 s_feature_incompat
///     0x064 4 s_feature_ro_compat      0x068 16 s_uuid
///     0x078 16 s_volume_name           0x0FE 2 s_desc_size (64-bit feature)
///     0x104 4 s_first_meta_bg          0x150 4 s_blocks_count_hi (64-bit feature)
///     0x24C 8 s_backup_bgs[2] (sparse_super2: the only groups with backup superblocks)
///
/// Read-only access ignores the ro_compat features (checksums, huge files, quotas…: none
/// changes where data is). Incompatible features change the layout; the known ones are handled
/// (see `Incompat`), anything else is refused.
struct Ext4Superblock {
    static let offset: UInt64 = 1024
    static let magic: UInt16 = 0xEF53

    /// s_feature_incompat bits.
    enum Incompat {
        static let compression: UInt32 = 0x1, fileType: UInt32 = 0x2, recover: UInt32 = 0x4
        static let journalDevice: UInt32 = 0x8, metaBlockGroups: UInt32 = 0x10, extents: UInt32 = 0x40
        static let bits64: UInt32 = 0x80, mmp: UInt32 = 0x100, flexBlockGroups: UInt32 = 0x200
        static let extendedAttributeInodes: UInt32 = 0x400, dirData: UInt32 = 0x1000
        static let checksumSeed: UInt32 = 0x2000, largeDirectories: UInt32 = 0x4000
        static let inlineData: UInt32 = 0x8000, encryption: UInt32 = 0x10000, caseFolding: UInt32 = 0x20000
        /// Everything this reader understands.
        static let supported: UInt32 = fileType | recover | metaBlockGroups | extents | bits64 | mmp
            | flexBlockGroups | extendedAttributeInodes | checksumSeed | largeDirectories | inlineData
            | encryption | caseFolding
    }

    static let roCompatBigAlloc: UInt32 = 0x200
    static let compatSparseSuper2: UInt32 = 0x200
    static let roCompatSparseSuper: UInt32 = 0x1

    let inodesCount: UInt32
    let blocksCount: UInt64
    let firstDataBlock: UInt64
    let blockSize: Int
    let blocksPerGroup: UInt64
    let inodesPerGroup: UInt32
    let inodeSize: Int
    let incompat: UInt32
    let roCompat: UInt32
    let compat: UInt32
    let descriptorSize: Int
    let firstMetaBlockGroup: UInt32
    let groupCount: UInt64
    let label: String?
    let backupGroups: [UInt64]

    var is64Bit: Bool { incompat & Incompat.bits64 != 0 }
    var hasFileType: Bool { incompat & Incompat.fileType != 0 }
    var hasMetaBlockGroups: Bool { incompat & Incompat.metaBlockGroups != 0 }
    /// The journal holds transactions not yet written to their home locations: reads show the
    /// file system as of the last checkpoint (no journal replay is done).
    var needsRecovery: Bool { incompat & Incompat.recover != 0 }
    var descriptorsPerBlock: Int { blockSize / descriptorSize }

    /// True when the bytes at 1024 carry the ext2/3/4 magic and a sane block size.
    static func looksValid(_ raw: [UInt8]) -> Bool {
        raw.count >= 1024 && raw.le16(0x38) == magic && raw.le32(0x18) <= 6
    }

    /// Parses and validates a superblock; `volumeSize` bounds the block count.
    init(_ raw: [UInt8], volumeSize: UInt64) throws {
        func bad(_ message: String) -> PluginError { PluginError(.corrupt, "ext4: superblock: \(message)") }
        guard raw.count >= 1024, raw.le16(0x38) == Ext4Superblock.magic else {
            throw bad("no ext2/3/4 magic 0xEF53 at byte 1080; not an ext file system")
        }
        let logBlockSize = raw.le32(0x18)
        guard logBlockSize <= 6 else { throw bad("block size exponent \(logBlockSize) is not within 0...6 (1 KiB to 64 KiB)") }
        blockSize = 1024 << Int(logBlockSize)
        incompat = raw.le32(0x60)
        roCompat = raw.le32(0x64)
        compat = raw.le32(0x5C)
        if incompat & Incompat.journalDevice != 0 {
            throw PluginError(.unsupported, "ext4: this volume is an external ext3/ext4 journal device, not a file system")
        }
        let unknown = incompat & ~Incompat.supported
        if unknown != 0 {
            var names: [String] = []
            if unknown & Incompat.compression != 0 { names.append("compression") }
            if unknown & Incompat.dirData != 0 { names.append("dirdata (Lustre)") }
            let rest = unknown & ~(Incompat.compression | Incompat.dirData)
            if rest != 0 { names.append("unknown bits 0x" + String(rest, radix: 16)) }
            throw PluginError(.unsupported, "ext4: the file system uses incompatible features dpm cannot read: \(names.joined(separator: ", "))")
        }
        let rev = raw.le32(0x4C)
        if rev == 0 {
            inodeSize = 128
        } else {
            inodeSize = Int(raw.le16(0x58))
            guard inodeSize >= 128, inodeSize <= blockSize, UInt64(inodeSize).isPowerOfTwo else {
                throw bad("inode size \(inodeSize) is not a power of two within 128...\(blockSize)")
            }
        }
        inodesCount = raw.le32(0x00)
        blocksCount = UInt64(raw.le32(0x04)) | (incompat & Incompat.bits64 != 0 ? UInt64(raw.le32(0x150)) << 32 : 0)
        firstDataBlock = UInt64(raw.le32(0x14))
        blocksPerGroup = UInt64(raw.le32(0x20))
        inodesPerGroup = raw.le32(0x28)
        let perBitmap = UInt64(blockSize) * 8
        if roCompat & Ext4Superblock.roCompatBigAlloc != 0 {
            let clusters = UInt64(raw.le32(0x24))
            guard clusters >= 1, clusters <= perBitmap, blocksPerGroup >= clusters else {
                throw bad("\(clusters) clusters and \(blocksPerGroup) blocks per group are inconsistent")
            }
        } else {
            guard blocksPerGroup >= 1, blocksPerGroup <= perBitmap else {
                throw bad("\(blocksPerGroup) blocks per group is not within 1...\(perBitmap)")
            }
        }
        guard inodesPerGroup >= 1, UInt64(inodesPerGroup) <= perBitmap else {
            throw bad("\(inodesPerGroup) inodes per group is not within 1...\(perBitmap)")
        }
        guard firstDataBlock <= 1, blocksCount > firstDataBlock else {
            throw bad("first data block \(firstDataBlock) and block count \(blocksCount) are inconsistent")
        }
        guard let bytes = blocksCount.times(UInt64(blockSize)), bytes <= volumeSize else {
            throw bad("\(blocksCount) blocks of \(blockSize) bytes do not fit in the volume (\(volumeSize) bytes)")
        }
        groupCount = (blocksCount - firstDataBlock).divideRoundingUp(blocksPerGroup)
        let inodeCapacity = groupCount.times(UInt64(inodesPerGroup)) ?? UInt64.max
        guard inodesCount >= 11, UInt64(inodesCount) <= inodeCapacity else {
            throw bad("\(inodesCount) inodes do not fit in \(groupCount) groups of \(inodesPerGroup)")
        }
        if incompat & Incompat.bits64 != 0 {
            descriptorSize = Int(raw.le16(0xFE))
            guard descriptorSize >= 64, descriptorSize <= 1024, UInt64(descriptorSize).isPowerOfTwo else {
                throw bad("group descriptor size \(descriptorSize) is not a power of two within 64...1024")
            }
        } else {
            descriptorSize = 32
        }
        firstMetaBlockGroup = raw.le32(0x104)
        backupGroups = [UInt64(raw.le32(0x24C)), UInt64(raw.le32(0x250))]
        let name = raw.bytes(0x78, 16).prefix { $0 != 0 }
        label = name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
    }

    /// True when group `group` starts with a backup superblock (and descriptor table).
    func groupHasSuperblock(_ group: UInt64) -> Bool {
        if group == 0 { return true }
        if compat & Ext4Superblock.compatSparseSuper2 != 0 { return backupGroups.contains(group) }
        guard roCompat & Ext4Superblock.roCompatSparseSuper != 0 else { return true }
        if group == 1 { return true }
        for base: UInt64 in [3, 5, 7] {
            var power = base
            while power < group { power *= base }
            if power == group { return true }
        }
        return false
    }
}
