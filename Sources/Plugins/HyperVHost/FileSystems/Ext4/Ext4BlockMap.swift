import Foundation
import PluginAPI

/// The ext2/ext3 block map of an inode without the extents flag.
///
/// i_block holds 15 little-endian 32-bit block numbers: entries 0–11 point to the file's
/// first 12 data blocks; entry 12 to a single-indirect block (a block of block numbers, P =
/// block size / 4 of them), entry 13 to a double-indirect block (P single-indirect blocks),
/// entry 14 to a triple-indirect block. A zero block number is a hole at any level.
///
/// Walks are restricted to the requested logical range, and an indirect block referenced
/// twice is an error (it would otherwise let a damaged map make the walk exponential).
enum Ext4BlockMap {
    static func runs(_ volume: Ext4Volume, inode: Ext4Inode, blocks range: Range<UInt64>) throws -> [Ext4Run] {
        var walker = Walker(volume: volume, inode: inode, range: range, perBlock: UInt64(volume.blockSize / 4))
        let area = inode.blockArea
        for index in 0..<12 where range.contains(UInt64(index)) {
            try walker.addData(UInt64(area.le32(index * 4)), logical: UInt64(index))
        }
        var base: UInt64 = 12
        var span = walker.perBlock
        for level in 1...3 {
            let pointer = UInt64(area.le32((11 + level) * 4))
            if pointer != 0, base < range.upperBound, base + span > range.lowerBound {
                try walker.walk(pointer, level: level, base: base, span: span)
            }
            base += span
            span *= walker.perBlock
            if base >= range.upperBound { break }
        }
        return walker.list.runs
    }

    private struct Walker {
        let volume: Ext4Volume
        let inode: Ext4Inode
        let range: Range<UInt64>
        let perBlock: UInt64
        var list: Ext4RunList
        var visited: Set<UInt64> = []

        init(volume: Ext4Volume, inode: Ext4Inode, range: Range<UInt64>, perBlock: UInt64) {
            self.volume = volume
            self.inode = inode
            self.range = range
            self.perBlock = perBlock
            list = Ext4RunList(inode: inode.number)
        }

        mutating func addData(_ block: UInt64, logical: UInt64) throws {
            guard block != 0 else { return }
            try volume.check(block: block, "inode \(inode.number): logical block \(logical)")
            try list.append(Ext4Run(logical: logical, count: 1, physical: block, uninitialized: false))
        }

        /// An indirect block of `level` (1: single) covering `span` logical blocks from `base`.
        mutating func walk(_ block: UInt64, level: Int, base: UInt64, span: UInt64) throws {
            guard visited.insert(block).inserted else {
                throw PluginError(.corrupt, "ext4: inode \(inode.number): indirect block \(block) is referenced twice")
            }
            let data = try volume.block(block, "inode \(inode.number): level-\(level) indirect block")
            let childSpan = span / perBlock
            let first = range.lowerBound > base ? (range.lowerBound - base) / childSpan : 0
            let last = min(perBlock, (range.upperBound - base).divideRoundingUp(childSpan))
            guard first < last else { return }
            for index in first..<last {
                let pointer = UInt64(data.le32(Int(index) * 4))
                guard pointer != 0 else { continue }
                let childBase = base + index * childSpan
                if level == 1 {
                    try addData(pointer, logical: childBase)
                } else {
                    try walk(pointer, level: level - 1, base: childBase, span: childSpan)
                }
            }
        }
    }
}
