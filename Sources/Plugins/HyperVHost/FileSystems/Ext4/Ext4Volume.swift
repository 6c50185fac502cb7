import Foundation
import PluginAPI

/// Block-level access to an ext2/3/4 volume: checked block reads, group descriptors and
/// inodes, with small caches for metadata. Thread-safe (one lock around the caches).
///
/// Group descriptor (32 bytes, or s_desc_size ≥ 64 with the 64-bit feature):
///
///     0x08 4 bg_inode_table_lo     0x12 2 bg_flags (0x1: inode table not initialised)
///     0x28 4 bg_inode_table_hi     (64-bit descriptors only)
///
/// The descriptor table starts in the block after the superblock (block s_first_data_block
/// + 1). With meta_bg, descriptor block n ≥ s_first_meta_bg lives instead in the first block
/// of group n × (descriptors per block) (after that group's backup superblock, if any).
///
/// Inode n (from 1) is entry (n − 1) mod s_inodes_per_group of the inode table of group
/// (n − 1) / s_inodes_per_group; entries are s_inode_size bytes.
final class Ext4Volume {
    let source: BlockSource
    let superblock: Ext4Superblock
    let blockSize: Int

    /// At most this many bytes of metadata blocks stay cached.
    static let cacheBytes = 8 << 20
    static let inodeCacheCount = 8192

    private let lock = NSLock()
    private var blocks: [UInt64: [UInt8]] = [:]
    private var blockOrder: [UInt64] = []
    private var inodeTables: [UInt64: UInt64] = [:]
    private var inodes: [UInt32: Ext4Inode] = [:]

    init(_ source: BlockSource) throws {
        guard source.size >= 2048 else {
            throw PluginError(.corrupt, "ext4: the volume (\(source.size) bytes) is too small to hold a superblock")
        }
        self.source = source
        superblock = try Ext4Superblock(try source.bytes(at: Ext4Superblock.offset, count: 1024), volumeSize: source.size)
        blockSize = superblock.blockSize
    }

    /// Throws unless blocks [block, block + count) lie inside the file system (block 0 holds
    /// the boot sector and superblock, so no file data or tree node can be there).
    func check(block: UInt64, count: UInt64 = 1, _ what: @autoclosure () -> String) throws {
        guard block > 0, let end = block.plus(count), end <= superblock.blocksCount else {
            throw PluginError(.corrupt, "ext4: \(what()): block \(block) (+\(count)) is outside the file system (\(superblock.blocksCount) blocks)")
        }
    }

    /// One metadata block (tree node, indirect block, inode table block), cached.
    func block(_ number: UInt64, _ what: @autoclosure () -> String) throws -> [UInt8] {
        try check(block: number, what())
        lock.lock()
        if let cached = blocks[number] { lock.unlock(); return cached }
        lock.unlock()
        let data = try source.bytes(at: number * UInt64(blockSize), count: blockSize)
        lock.lock()
        defer { lock.unlock() }
        if blocks[number] == nil {
            if blockOrder.count >= Ext4Volume.cacheBytes / blockSize {
                for old in blockOrder.prefix(blockOrder.count / 2) { blocks[old] = nil }
                blockOrder.removeFirst(blockOrder.count / 2)
            }
            blocks[number] = data
            blockOrder.append(number)
        }
        return data
    }

    /// Reads `buffer.count` bytes of the volume starting at byte `offset` of block `block`
    /// (file data, uncached).
    func readData(block: UInt64, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try source.read(at: block * UInt64(blockSize) + offset, into: buffer)
    }

    /// Byte offset of group `group`'s descriptor.
    private func descriptorOffset(_ group: UInt64) -> UInt64 {
        let perBlock = UInt64(superblock.descriptorsPerBlock)
        let index = group / perBlock
        let blockNumber: UInt64
        if superblock.hasMetaBlockGroups && index >= UInt64(superblock.firstMetaBlockGroup) {
            let firstGroup = index * perBlock
            blockNumber = superblock.firstDataBlock + firstGroup * superblock.blocksPerGroup
                + (superblock.groupHasSuperblock(firstGroup) ? 1 : 0)
        } else {
            blockNumber = superblock.firstDataBlock + 1 + index
        }
        return blockNumber * UInt64(blockSize) + (group % perBlock) * UInt64(superblock.descriptorSize)
    }

    /// The first block of group `group`'s inode table, checked to lie inside the file system.
    func inodeTable(group: UInt64) throws -> UInt64 {
        lock.lock()
        if let cached = inodeTables[group] { lock.unlock(); return cached }
        lock.unlock()
        let offset = descriptorOffset(group)
        let blockNumber = offset / UInt64(blockSize)
        let raw = try block(blockNumber, "group \(group) descriptor").bytes(Int(offset % UInt64(blockSize)), superblock.descriptorSize)
        var table = UInt64(raw.le32(0x08))
        if superblock.is64Bit && superblock.descriptorSize >= 64 { table |= UInt64(raw.le32(0x28)) << 32 }
        let tableBytes = UInt64(superblock.inodesPerGroup) * UInt64(superblock.inodeSize)
        try check(block: table, count: tableBytes.divideRoundingUp(UInt64(blockSize)), "group \(group) inode table")
        if raw.le16(0x12) & 0x1 != 0 {
            throw PluginError(.corrupt, "ext4: group \(group): its inode table is marked uninitialised, so no inode in it is in use")
        }
        lock.lock()
        inodeTables[group] = table
        lock.unlock()
        return table
    }

    /// Inode `number`, checked to exist.
    func inode(_ number: UInt32) throws -> Ext4Inode {
        guard number >= 1, number <= superblock.inodesCount else {
            throw PluginError(.corrupt, "ext4: inode \(number) does not exist (the file system has \(superblock.inodesCount))")
        }
        lock.lock()
        if let cached = inodes[number] { lock.unlock(); return cached }
        lock.unlock()
        let group = UInt64(number - 1) / UInt64(superblock.inodesPerGroup)
        let index = UInt64(number - 1) % UInt64(superblock.inodesPerGroup)
        let byte = index * UInt64(superblock.inodeSize)
        let table = try inodeTable(group: group)
        let data = try block(table + byte / UInt64(blockSize), "inode \(number)")
        let inode = try Ext4Inode(number: number, raw: data.bytes(Int(byte % UInt64(blockSize)), superblock.inodeSize))
        lock.lock()
        if inodes.count >= Ext4Volume.inodeCacheCount { inodes.removeAll(keepingCapacity: true) }
        inodes[number] = inode
        lock.unlock()
        return inode
    }

    /// The mapped runs of logical blocks `blocks` of a block-based (not inline) inode.
    func runs(of inode: Ext4Inode, blocks: Range<UInt64>) throws -> [Ext4Run] {
        if inode.usesExtents { return try Ext4ExtentTree.runs(self, inode: inode, blocks: blocks) }
        return try Ext4BlockMap.runs(self, inode: inode, blocks: blocks)
    }
}
