import Foundation
import PluginAPI

/// A run of a file's logical blocks stored contiguously on the volume. Logical blocks not
/// covered by any run are holes (read as zeros).
struct Ext4Run: Equatable {
    var logical: UInt64
    var count: UInt64
    var physical: UInt64
    /// An extent allocated but never written ("unwritten"): reads as zeros.
    var uninitialized: Bool
}

/// Runs in ascending logical order, adjacent ones merged; bounded in number.
struct Ext4RunList {
    static let maxRuns = 4_000_000
    let inode: UInt32
    private(set) var runs: [Ext4Run] = []

    init(inode: UInt32) { self.inode = inode }

    mutating func append(_ run: Ext4Run) throws {
        guard run.count > 0 else { return }
        if var last = runs.last, last.uninitialized == run.uninitialized,
           last.logical + last.count == run.logical, last.physical + last.count == run.physical {
            last.count += run.count
            runs[runs.count - 1] = last
            return
        }
        guard runs.count < Ext4RunList.maxRuns else {
            throw PluginError(.unsupported, "ext4: inode \(inode): more than \(Ext4RunList.maxRuns) fragments in the range read; implausibly fragmented (damaged?)")
        }
        runs.append(run)
    }
}

/// The extent tree of an inode with the extents flag.
///
/// Every node starts with a 12-byte header:
///
///     0x0 2 eh_magic 0xF30A   0x2 2 eh_entries   0x4 2 eh_max   0x6 2 eh_depth (0: leaf)
///
/// followed by `eh_entries` 12-byte records. Index records (depth > 0):
///
///     0x0 4 ei_block (first logical block covered)   0x4 4 ei_leaf_lo   0x8 2 ei_leaf_hi
///
/// Leaf records (depth 0):
///
///     0x0 4 ee_block   0x4 2 ee_len (> 32768: unwritten, length ee_len − 32768)
///     0x6 2 ee_start_hi   0x8 4 ee_start_lo
///
/// The root is the inode's 60-byte i_block (at most 4 records); other nodes are whole blocks
/// (a checksum tail may follow the records). Depth is at most 5, decreases by one per level,
/// and records are sorted by logical block; a child covers from its ei_block up to the next
/// record's.
enum Ext4ExtentTree {
    static let magic: UInt16 = 0xF30A
    static let maxDepth = 5

    /// The runs of logical blocks `blocks`.
    static func runs(_ volume: Ext4Volume, inode: Ext4Inode, blocks: Range<UInt64>) throws -> [Ext4Run] {
        var list = Ext4RunList(inode: inode.number)
        var visited: Set<UInt64> = []
        try walk(volume, inode: inode, node: inode.blockArea, where: "the inode's root node", expectedDepth: nil,
                 bounds: 0..<(1 << 32), range: blocks, list: &list, visited: &visited)
        return list.runs
    }

    private static func walk(_ volume: Ext4Volume, inode: Ext4Inode, node: [UInt8], where place: String,
                             expectedDepth: Int?, bounds: Range<UInt64>, range: Range<UInt64>,
                             list: inout Ext4RunList, visited: inout Set<UInt64>) throws {
        func bad(_ message: String) -> PluginError {
            PluginError(.corrupt, "ext4: inode \(inode.number): \(message) (\(place))")
        }
        guard node.le16(0) == magic else { throw bad("extent header magic is 0x\(String(node.le16(0), radix: 16)), not 0xf30a") }
        let entries = Int(node.le16(2)), capacity = Int(node.le16(4)), depth = Int(node.le16(6))
        guard entries <= capacity, 12 + capacity * 12 <= node.count else {
            throw bad("extent node claims \(entries) of \(capacity) records, more than its \(node.count) bytes hold")
        }
        guard depth <= maxDepth else { throw bad("extent tree depth \(depth) exceeds \(maxDepth)") }
        if let expectedDepth, depth != expectedDepth { throw bad("extent node has depth \(depth) where \(expectedDepth) was expected") }
        if depth == 0 {
            var previousEnd: UInt64 = 0
            for index in 0..<entries {
                let record = 12 + index * 12
                let first = UInt64(node.le32(record))
                var length = UInt64(node.le16(record + 4))
                let uninitialized = length > 32768
                if uninitialized { length -= 32768 }
                let physical = UInt64(node.le16(record + 6)) << 32 | UInt64(node.le32(record + 8))
                guard length > 0 else { throw bad("extent \(index) has length 0") }
                guard first >= previousEnd else { throw bad("extent \(index) (logical block \(first)) overlaps the one before it") }
                previousEnd = first + length
                try volume.check(block: physical, count: length, "inode \(inode.number): extent \(index) (\(place))")
                let from = max(first, bounds.lowerBound, range.lowerBound)
                let to = min(first + length, bounds.upperBound, range.upperBound)
                if from < to {
                    try list.append(Ext4Run(logical: from, count: to - from, physical: physical + (from - first), uninitialized: uninitialized))
                }
            }
            return
        }
        var previousStart: UInt64?
        for index in 0..<entries {
            let record = 12 + index * 12
            let start = UInt64(node.le32(record))
            if let previousStart, start <= previousStart { throw bad("index \(index) (logical block \(start)) is out of order") }
            previousStart = start
            let next = index + 1 < entries ? UInt64(node.le32(record + 12)) : bounds.upperBound
            let lower = max(start, bounds.lowerBound), upper = min(next, bounds.upperBound)
            guard lower < upper, lower < range.upperBound, upper > range.lowerBound else { continue }
            let child = UInt64(node.le16(record + 8)) << 32 | UInt64(node.le32(record + 4))
            let childPlace = "extent node at block \(child), depth \(depth - 1)"
            guard visited.insert(child).inserted else { throw bad("extent node at block \(child) is referenced twice") }
            let data = try volume.block(child, "inode \(inode.number): \(childPlace)")
            try walk(volume, inode: inode, node: data, where: childPlace, expectedDepth: depth - 1,
                     bounds: lower..<upper, range: range, list: &list, visited: &visited)
        }
    }
}
