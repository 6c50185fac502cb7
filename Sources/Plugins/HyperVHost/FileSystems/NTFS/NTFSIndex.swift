import Foundation
import PluginAPI

/// One entry of a directory: the file reference it points at and its $FILE_NAME key.
struct NTFSIndexEntry {
    let reference: UInt64
    let fileName: NTFSFileName

    var recordNumber: UInt64 { NTFSReference.record(reference) }
    var sequence: UInt16 { NTFSReference.sequence(reference) }
}

/// A directory's file-name index, "$I30": a B+ tree whose root node is the resident
/// $INDEX_ROOT attribute and whose other nodes are INDX blocks of the non-resident
/// $INDEX_ALLOCATION attribute ($BITMAP:$I30 marks the blocks in use; the walk below only
/// reaches blocks through the tree, so it is not needed).
///
/// $INDEX_ROOT value:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | indexed attribute type (0x30, $FILE_NAME, for directories) |
/// | 0x04 | 4 | collation rule (1: file names, compared through $UpCase) |
/// | 0x08 | 4 | index block size in bytes (4096) |
/// | 0x0C | 1 | index block size in clusters, or in 512-byte units when a block is smaller than a cluster |
/// | 0x10 | 16 | node header (below), entries follow |
///
/// Node header (offsets relative to the header itself):
///
/// | 0x00 | 4 | offset of the first entry |
/// |---|---|---|
/// | 0x04 | 4 | end of the entries in use |
/// | 0x08 | 4 | allocated size of the node |
/// | 0x0C | 1 | flags: 0x01 the node has children |
///
/// INDX block (fixups like FILE records, see `NTFSFixups`): "INDX" at 0x00, update sequence
/// array offset and count at 0x04/0x06, $LogFile LSN at 0x08, the block's own VCN at 0x10, node
/// header at 0x18. Block n lies at VCN × (cluster size, or 512 when blocks are smaller than
/// clusters) in $INDEX_ALLOCATION.
///
/// Index entry:
///
/// | 0x00 | 8 | file reference of the named file |
/// |---|---|---|
/// | 0x08 | 2 | entry length (8-aligned) |
/// | 0x0A | 2 | key length |
/// | 0x0C | 2 | flags: 0x01 has a child node, 0x02 last entry of the node (no key) |
/// | 0x10 | … | key: a $FILE_NAME value |
/// | length − 8 | 8 | VCN of the child node holding the names that sort before this entry (flag 0x01) |
///
/// The walk visits children before each entry, so entries come out in collation order. It
/// checks every offset and length against its node, visits each block at most once, descends
/// at most 32 levels, and checks that each block's VCN is the one it was reached by.
struct NTFSDirectoryIndex {
    static let maximumDepth = 32
    static let indexName = "$I30"

    private let owner: String
    private let blockSize: Int
    private let vcnUnit: UInt64
    private let allocation: NTFSStream?
    private var visited: Set<UInt64> = []
    private(set) var entries: [NTFSIndexEntry] = []
    /// INDX blocks read, and the deepest level reached (0: the root node alone).
    private(set) var blocksRead = 0
    private(set) var depth = 0

    /// Reads every entry of directory `inode`.
    static func entries(of inode: NTFSInode, mft: NTFSMasterFileTable) throws -> [NTFSIndexEntry] {
        try read(inode, mft: mft).entries
    }

    /// Walks the whole index of directory `inode`.
    static func read(_ inode: NTFSInode, mft: NTFSMasterFileTable) throws -> NTFSDirectoryIndex {
        let owner = "directory index of MFT record \(inode.number)"
        guard let rootAttribute = inode.pieces(NTFSAttribute.indexRoot, name: indexName).first else {
            throw NTFSError.corrupt("\(owner): no $INDEX_ROOT:$I30 attribute")
        }
        guard let root = rootAttribute.residentValue else {
            throw NTFSError.corrupt("\(rootAttribute.description): $INDEX_ROOT is not resident")
        }
        guard root.count >= 0x20 else { throw NTFSError.corrupt("\(owner): $INDEX_ROOT of \(root.count) bytes is too short") }
        guard root.le32(0) == NTFSAttribute.fileName else {
            throw NTFSError.corrupt("\(owner): $I30 indexes attribute type \(ntfsHex(root.le32(0))), not $FILE_NAME")
        }
        let blockSize = Int(root.le32(8))
        guard UInt64(blockSize).isPowerOfTwo, (512...65536).contains(blockSize) else {
            throw NTFSError.corrupt("\(owner): index block size \(blockSize) is not a power of two from 512 bytes to 64 KiB")
        }
        var index = NTFSDirectoryIndex(owner: owner, blockSize: blockSize,
                                       vcnUnit: UInt64(blockSize) >= mft.boot.clusterSize ? mft.boot.clusterSize : 512,
                                       allocation: try inode.stream(NTFSAttribute.indexAllocation, name: indexName, mft: mft))
        try index.walk(root, header: 0x10, what: "\(owner): $INDEX_ROOT", depth: 0)
        return index
    }

    private init(owner: String, blockSize: Int, vcnUnit: UInt64, allocation: NTFSStream?) {
        self.owner = owner
        self.blockSize = blockSize
        self.vcnUnit = vcnUnit
        self.allocation = allocation
    }

    /// Collects the entries of the node whose header lies at `header` in `node`.
    private mutating func walk(_ node: [UInt8], header: Int, what: String, depth: Int) throws {
        let first = Int(node.le32(header)), used = Int(node.le32(header + 4))
        guard first >= 16, first <= used, used <= node.count - header else {
            throw NTFSError.corrupt("\(what): entries (\(ntfsHex(first))–\(ntfsHex(used))) lie outside the node (\(node.count - header) bytes)")
        }
        let end = header + used
        var offset = header + first
        while true {
            guard offset + 16 <= end else {
                throw NTFSError.corrupt("\(what): entries end at offset \(ntfsHex(offset)) without a last-entry marker")
            }
            let length = Int(node.le16(offset + 8)), keyLength = Int(node.le16(offset + 10)), flags = node.le16(offset + 12)
            let hasChild = flags & 1 != 0, isLast = flags & 2 != 0
            guard length >= (hasChild ? 24 : 16), length % 8 == 0, length <= end - offset else {
                throw NTFSError.corrupt("\(what): entry at offset \(ntfsHex(offset)) (length \(length)) runs past the node")
            }
            if hasChild {
                try descend(to: node.le64(offset + length - 8), from: what, depth: depth + 1)
            }
            if isLast { break }
            guard keyLength >= NTFSFileName.headerSize, 16 + keyLength <= length - (hasChild ? 8 : 0) else {
                throw NTFSError.corrupt("\(what): entry at offset \(ntfsHex(offset)) has a key of \(keyLength) bytes that does not fit its \(length) bytes")
            }
            let key = try NTFSFileName(node.bytes(offset + 16, keyLength), owner: "\(what): entry at offset \(ntfsHex(offset))")
            entries.append(NTFSIndexEntry(reference: node.le64(offset), fileName: key))
            offset += length
        }
    }

    /// Reads the INDX block at `vcn` and walks it.
    private mutating func descend(to vcn: UInt64, from parent: String, depth: Int) throws {
        let what = "\(owner): index block at VCN \(vcn)"
        guard let allocation else {
            throw NTFSError.corrupt("\(parent): an entry points to a child node but the directory has no $INDEX_ALLOCATION")
        }
        guard depth <= Self.maximumDepth else {
            throw NTFSError.corrupt("\(what): the index is deeper than \(Self.maximumDepth) levels (a loop?)")
        }
        guard visited.insert(vcn).inserted else {
            throw NTFSError.corrupt("\(what) is reached twice (the index loops)")
        }
        guard let start = vcn.times(vcnUnit), let stop = start.plus(UInt64(blockSize)), stop <= allocation.size else {
            throw NTFSError.corrupt("\(what) lies past the end of $INDEX_ALLOCATION (\(allocation.size) bytes)")
        }
        var block = [UInt8](repeating: 0, count: blockSize)
        try block.withUnsafeMutableBytes { try allocation.read(at: start, into: $0) }
        try NTFSFixups.apply(&block, magic: "INDX", what: what)
        guard block.le64(0x10) == vcn else {
            throw NTFSError.corrupt("\(what) says it is the block at VCN \(block.le64(0x10))")
        }
        blocksRead += 1
        self.depth = max(self.depth, depth)
        try walk(block, header: 0x18, what: what, depth: depth)
    }
}
