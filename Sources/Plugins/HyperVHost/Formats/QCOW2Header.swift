import Foundation

/// The qcow2 header (qemu's docs/interop/qcow2.txt), versions 2 and 3. All fields big-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `QFI\xfb` |
/// | 4 | 4 | version, 2 or 3 |
/// | 8 | 8 | backing_file_offset: file offset of the backing file name (0: none); within the first cluster |
/// | 16 | 4 | backing_file_size: length of the name, no terminator, at most 1023 |
/// | 20 | 4 | cluster_bits: cluster size is 1 << cluster_bits, 9 … 21 |
/// | 24 | 8 | size: the virtual disk size |
/// | 32 | 4 | crypt_method: 0 none, 1 AES, 2 LUKS |
/// | 36 | 4 | l1_size: entries in the active L1 table |
/// | 40 | 8 | l1_table_offset, cluster aligned |
/// | 48 | 8 | refcount_table_offset |
/// | 56 | 4 | refcount_table_clusters |
/// | 60 | 4 | nb_snapshots |
/// | 64 | 8 | snapshots_offset |
/// | 72 | 8 | incompatible_features (v3): bit 0 dirty, 1 corrupt, 2 external data file, 3 compression type, 4 extended L2 entries |
/// | 80 | 8 | compatible_features (v3) |
/// | 88 | 8 | autoclear_features (v3) |
/// | 96 | 4 | refcount_order (v3) |
/// | 100 | 4 | header_length (v3; version 2 headers are 72 bytes) |
/// | 104 | 1 | compression_type (when header_length > 104) |
///
/// Header extensions follow the header, each: type (4), length (4), data padded to 8 bytes;
/// type 0 ends the list. dpm reads 0xE2792ACA (backing file format name) and notices
/// 0x44415441 (external data file name). Refcounts and snapshots are not needed for reading.
struct QCOW2Header {
    var version: UInt32
    var backingFileOffset: UInt64
    var backingFileSize: UInt32
    var clusterBits: UInt32
    var size: UInt64
    var cryptMethod: UInt32
    var l1Size: UInt32
    var l1TableOffset: UInt64
    var incompatibleFeatures: UInt64
    var headerLength: UInt32
    var backingFile: String?
    var backingFormat: String?

    var clusterSize: UInt64 { 1 << UInt64(clusterBits) }

    static let dirtyBit: UInt64 = 1 << 0
    static let corruptBit: UInt64 = 1 << 1
    static let externalDataFileBit: UInt64 = 1 << 2
    static let compressionTypeBit: UInt64 = 1 << 3
    static let extendedL2Bit: UInt64 = 1 << 4
    static let knownIncompatibleBits: UInt64 = 0x1F

    static func read(from file: FileReader) throws -> QCOW2Header {
        let path = file.path
        guard file.physicalSize >= 72 else { throw DiskError.corrupt(path, "file is too short for a qcow2 header") }
        let head = try file.readBytes(at: 0, count: Int(Swift.min(file.physicalSize, 4096)))
        guard Array(head[0..<4]) == DiskFormat.qcow2Magic else {
            throw DiskError.corrupt(path, "bad signature: a qcow2 file starts with QFI\\xfb")
        }
        let version = head.be32(4)
        guard version == 2 || version == 3 else { throw DiskError.unsupported(path, "qcow2 version \(version) (dpm reads 2 and 3)") }
        let clusterBits = head.be32(20)
        guard clusterBits >= 9, clusterBits <= 21 else {
            throw DiskError.corrupt(path, "cluster_bits \(clusterBits) is outside 9…21")
        }
        var header = QCOW2Header(
            version: version, backingFileOffset: head.be64(8), backingFileSize: head.be32(16), clusterBits: clusterBits,
            size: head.be64(24), cryptMethod: head.be32(32), l1Size: head.be32(36), l1TableOffset: head.be64(40),
            incompatibleFeatures: version >= 3 ? head.be64(72) : 0, headerLength: version >= 3 ? head.be32(100) : 72)
        guard header.headerLength >= (version >= 3 ? 104 : 72), UInt64(header.headerLength) <= header.clusterSize else {
            throw DiskError.corrupt(path, "header_length \(header.headerLength) is invalid")
        }
        guard header.cryptMethod == 0 else {
            throw DiskError.unsupported(path, "the image is encrypted (crypt_method \(header.cryptMethod)); dpm does not read encrypted qcow2 images")
        }
        let unknown = header.incompatibleFeatures & ~knownIncompatibleBits
        guard unknown == 0 else {
            throw DiskError.unsupported(path, "unknown incompatible qcow2 features 0x\(String(unknown, radix: 16))")
        }
        if header.incompatibleFeatures & externalDataFileBit != 0 {
            throw DiskError.unsupported(path, "the image keeps its data in an external data file; dpm does not read such images")
        }
        if header.incompatibleFeatures & extendedL2Bit != 0 {
            throw DiskError.unsupported(path, "the image uses extended L2 entries (subclusters); dpm does not read them")
        }
        guard header.size <= DiskLimits.maxVirtualSize else {
            throw DiskError.corrupt(path, "virtual size \(header.size) is implausibly large")
        }
        try header.readExtensions(head, path: path, file: file)
        try header.readBackingFileName(file: file, path: path)
        return header
    }

    private mutating func readExtensions(_ head: [UInt8], path: String, file: FileReader) throws {
        let limit = Int(Swift.min(clusterSize, UInt64(head.count)))
        var offset = Int(headerLength)
        while offset + 8 <= limit {
            let type = head.be32(offset), length = Int(head.be32(offset + 4))
            if type == 0 { break }
            guard length <= limit - offset - 8 else {
                throw DiskError.corrupt(path, "header extension 0x\(String(type, radix: 16)) at offset \(offset) runs past the first cluster")
            }
            if type == 0xE279_2ACA {
                backingFormat = String(decoding: head[offset + 8..<offset + 8 + length].prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += 8 + ((length + 7) & ~7)
        }
    }

    private mutating func readBackingFileName(file: FileReader, path: String) throws {
        guard backingFileOffset != 0 else { return }
        guard backingFileSize > 0, backingFileSize <= 1023,
              let end = backingFileOffset.plus(UInt64(backingFileSize)), end <= clusterSize, end <= file.size else {
            throw DiskError.corrupt(path, "backing file name (offset \(backingFileOffset), \(backingFileSize) bytes) is not inside the first cluster")
        }
        let bytes = try file.readBytes(at: backingFileOffset, count: Int(backingFileSize))
        backingFile = String(decoding: bytes, as: UTF8.self)
    }
}
