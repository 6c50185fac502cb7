import Foundation
import PluginAPI

/// One partition of a disk, as a volume a file system reader can open through
/// `BlockSlice(disk, offset: start, size: size)`.
struct Partition: Equatable {
    /// The partition number as Linux counts it: MBR primaries 1–4 by slot, logical partitions
    /// 5, 6, … in chain order; GPT entry slot + 1.
    var index: Int
    /// Byte offset of the first byte on the disk (not a sector number).
    var start: UInt64
    /// Length in bytes.
    var size: UInt64
    /// MBR: the type byte as "0x83", "0x07", "0x0c" (lower-case hex). GPT: the partition type
    /// GUID in upper case, e.g. "0FC63DAF-8483-4772-8E79-3D69D8477DE4".
    var type: String
    /// GPT partition name (UTF-16LE on disk); nil when empty and always nil for MBR.
    var name: String?
    /// "mbr" or "gpt".
    var scheme: String
}

/// Everything `PartitionTable.inspect` found, including the problems it worked around.
struct PartitionTableReport {
    /// "mbr", "gpt", or nil when the disk carries no partition table (a bare volume).
    var scheme: String?
    /// The logical sector size the table was found with (512, or 4096 for some GPT disks).
    var sectorSize: Int
    var partitions: [Partition]
    /// Repairs and oddities, e.g. "gpt: primary header at LBA 1 is damaged (…); using the
    /// backup header at LBA 2097151". Empty for a healthy table.
    var warnings: [String]
}

/// Reads MBR and GPT partition tables.
///
/// Decision order:
/// 1. Sector 0 is read. It is an MBR when it ends with 55 AA, its four status bytes are 0x00
///    or 0x80, and it is not the boot sector of a bare FAT/NTFS/exFAT volume (those also end
///    with 55 AA but carry a BPB where the MBR has code).
/// 2. An MBR with a 0xEE (protective) entry, or a disk without a valid MBR but with "EFI PART"
///    at LBA 1 or the last LBA, is read as GPT (see `GPT`); a hybrid MBR is ignored in favour
///    of the GPT.
/// 3. Any other MBR is read with its extended/logical partitions (see `MBR`).
/// 4. Otherwise the disk has no table: `read` returns [] and the caller probes the whole disk
///    as one volume.
enum PartitionTable {
    /// The partitions of `disk` in table order; [] for a disk without a partition table.
    /// Throws PluginError(.corrupt) when a table is present but unreadable (e.g. both GPT
    /// headers are damaged).
    static func read(_ disk: BlockSource) throws -> [Partition] {
        try inspect(disk).partitions
    }

    /// Like `read`, with the scheme, sector size and warnings.
    static func inspect(_ disk: BlockSource) throws -> PartitionTableReport {
        let none = PartitionTableReport(scheme: nil, sectorSize: 512, partitions: [], warnings: [])
        guard disk.size >= 1024 else { return none }
        let sector0 = try disk.bytes(at: 0, count: 512)
        let mbr = MBR.primaryEntries(sector0)
        let isProtective = mbr?.contains { $0.type == MBR.protectiveType } ?? false
        if isProtective || (mbr == nil && GPT.detectSectorSize(disk) != nil) {
            var report = try GPT.read(disk)
            if !isProtective {
                report.warnings.insert("gpt: the disk has no protective MBR (sector 0 holds no valid MBR); the GPT is used anyway", at: 0)
            }
            return report
        }
        guard let mbr else { return none }
        return try MBR.read(disk, primaries: mbr)
    }
}
