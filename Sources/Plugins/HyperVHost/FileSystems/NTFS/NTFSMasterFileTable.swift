import Foundation
import PluginAPI

/// The master file table ($MFT): an array of fixed-size FILE records (see `NTFSFileRecord`),
/// record n describing file n. $MFT is itself a file, record 0, whose unnamed $DATA attribute
/// maps the table; its first record lies at the boot sector's MFT cluster, and the first four
/// records have a copy ($MFTMirr) at the mirror cluster.
///
/// Opening: record 0 is read at the MFT cluster (from the mirror when that copy is damaged),
/// its $DATA runlist maps the table; when $MFT is so fragmented that its runlist continues in
/// extension records, record 0's $ATTRIBUTE_LIST names them, and each is read through the part
/// of the table mapped so far, in VCN order. Reserved records: 0 $MFT, 1 $MFTMirr, 2 $LogFile,
/// 3 $Volume, 4 $AttrDef, 5 root directory, 6 $Bitmap, 7 $Boot, 8 $BadClus, 9 $Secure,
/// 10 $UpCase, 11 $Extend, 12–23 reserved; user files start at 24 (ntfs-3g: 64).
final class NTFSMasterFileTable {
    let volume: BlockSource
    let boot: NTFSBootSector
    let recordSize: Int
    /// $MFT's unnamed $DATA.
    private(set) var stream: NTFSStream
    /// Records in the table.
    private(set) var recordCount: UInt64
    /// True when record 0 had to be read from $MFTMirr.
    private(set) var usedMirror = false

    init(volume: BlockSource, boot: NTFSBootSector) throws {
        self.volume = volume
        self.boot = boot
        recordSize = boot.recordSize
        let record0: NTFSFileRecord
        do {
            record0 = try Self.readRecordZero(volume: volume, boot: boot, cluster: boot.mftCluster)
        } catch let primaryError {
            guard let mirror = try? Self.readRecordZero(volume: volume, boot: boot, cluster: boot.mftMirrorCluster) else {
                throw primaryError
            }
            record0 = mirror
            usedMirror = true
        }
        var pieces = record0.attributes.filter { $0.type == NTFSAttribute.data && $0.name.isEmpty }
        stream = try NTFSStream(pieces: pieces, owner: "$MFT (MFT record 0): $DATA", volume: volume, clusterSize: boot.clusterSize,
                             partial: true)
        guard stream.resident == nil else { throw NTFSError.corrupt("$MFT (MFT record 0): $DATA is resident") }
        recordCount = stream.size / UInt64(recordSize)
        if let list = record0.attributes.first(where: { $0.type == NTFSAttribute.attributeList }) {
            let listStream = try NTFSStream(pieces: [list], owner: "MFT record 0: $ATTRIBUTE_LIST", volume: volume,
                                            clusterSize: boot.clusterSize)
            let entries = try NTFSAttributeListEntry.parse(listStream.readAll(limit: NTFSAttributeListEntry.maximumListSize),
                                                           owner: "MFT record 0: $ATTRIBUTE_LIST")
            var loaded: Set<UInt64> = [0]
            for entry in entries.sorted(by: { $0.startingVCN < $1.startingVCN })
            where entry.type == NTFSAttribute.data && entry.name.isEmpty && !loaded.contains(entry.recordNumber) {
                loaded.insert(entry.recordNumber)
                let extensionRecord = try record(entry.recordNumber)
                guard extensionRecord.isInUse, !extensionRecord.isBase, extensionRecord.baseRecord == 0 else {
                    throw NTFSError.corrupt("MFT record \(entry.recordNumber), listed as holding part of $MFT's runlist, is not an extension record of $MFT")
                }
                pieces += extensionRecord.attributes.filter { $0.type == NTFSAttribute.data && $0.name.isEmpty }
                stream = try NTFSStream(pieces: pieces, owner: "$MFT (MFT record 0): $DATA", volume: volume, clusterSize: boot.clusterSize,
                                    partial: true)
            }
        }
        // Now the whole runlist is known: it must cover $MFT.
        stream = try NTFSStream(pieces: pieces, owner: "$MFT (MFT record 0): $DATA", volume: volume, clusterSize: boot.clusterSize)
        guard recordCount > 11 else {
            throw NTFSError.corrupt("$MFT holds \(recordCount) records; a volume has at least 12")
        }
    }

    /// Reads record 0 directly at `cluster` (it is always contiguous there).
    private static func readRecordZero(volume: BlockSource, boot: NTFSBootSector, cluster: UInt64) throws -> NTFSFileRecord {
        let bytes = try volume.bytes(at: cluster * boot.clusterSize, count: boot.recordSize)
        let record = try NTFSFileRecord(bytes, number: 0, clusterCount: boot.clusterCount)
        guard record.isInUse, record.isBase else {
            throw NTFSError.corrupt("MFT record 0 ($MFT) is not an in-use base record")
        }
        return record
    }

    /// Reads and parses record `number`.
    func record(_ number: UInt64) throws -> NTFSFileRecord {
        guard number < recordCount else {
            throw NTFSError.corrupt("MFT record \(number) does not exist ($MFT holds \(recordCount) records)")
        }
        var bytes = [UInt8](repeating: 0, count: recordSize)
        try bytes.withUnsafeMutableBytes { try stream.read(at: number * UInt64(recordSize), into: $0) }
        return try NTFSFileRecord(bytes, number: number, clusterCount: boot.clusterCount)
    }

    /// The volume byte offset of record `number` when its bytes are contiguous (tests and tools).
    func byteOffset(of number: UInt64) -> UInt64? {
        guard number < recordCount else { return nil }
        let start = number * UInt64(recordSize)
        let vcn = start / boot.clusterSize
        guard let index = NTFSRunList.index(of: vcn, in: stream.runs),
              let lcn = stream.runs[index].lcn else { return nil }
        let end = start + UInt64(recordSize) - 1
        guard end / boot.clusterSize < stream.runs[index].endVCN else { return nil }
        return (lcn + vcn - stream.runs[index].vcn) * boot.clusterSize + start % boot.clusterSize
    }
}
