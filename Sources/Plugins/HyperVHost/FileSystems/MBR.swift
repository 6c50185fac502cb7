import Foundation
import PluginAPI

/// The classic PC partition table (MBR) and its chain of extended boot records (EBRs).
///
/// Sector 0 (512 bytes; sectors are always 512 bytes here):
///
///     0x000  446  boot code
///     0x1BE   64  four partition entries of 16 bytes
///     0x1FE    2  signature 55 AA
///
/// Partition entry (16 bytes):
///
///     0x0   1  status: 0x80 bootable, 0x00 not (anything else: not an MBR)
///     0x1   3  CHS of the first sector (ignored; LBA is authoritative)
///     0x4   1  type (0x00 unused, 0x05/0x0F/0x85 extended, 0xEE GPT protective)
///     0x5   3  CHS of the last sector (ignored)
///     0x8   4  first sector, LBA (little-endian)
///     0xC   4  number of sectors (little-endian)
///
/// An extended partition holds a linked list of EBRs, each a sector laid out like an MBR that
/// uses only its first two entries: entry 1 is the logical partition, its start relative to
/// this EBR; entry 2 (type extended) points to the next EBR, its start relative to the start
/// of the extended partition. A zero entry 2 ends the chain. Logical partitions are numbered
/// 5, 6, … in chain order, as Linux does.
enum MBR {
    static let protectiveType: UInt8 = 0xEE
    static let extendedTypes: Set<UInt8> = [0x05, 0x0F, 0x85]
    static let sectorSize: UInt64 = 512
    /// More logical partitions than this means a damaged (or hostile) chain.
    static let maxLogicalPartitions = 256

    /// One parsed 16-byte entry.
    struct Entry {
        var slot: Int
        var type: UInt8
        var firstLBA: UInt32
        var sectors: UInt32
    }

    /// The used entries of a boot sector, or nil when the sector is not an MBR.
    static func primaryEntries(_ sector: [UInt8]) -> [Entry]? {
        guard sector.count >= 512, sector[510] == 0x55, sector[511] == 0xAA else { return nil }
        guard !looksLikeVolumeBootSector(sector) else { return nil }
        var entries: [Entry] = []
        for slot in 0..<4 {
            let base = 0x1BE + slot * 16
            let status = sector[base]
            guard status == 0x00 || status == 0x80 else { return nil }
            let entry = Entry(slot: slot, type: sector[base + 4], firstLBA: sector.le32(base + 8),
                              sectors: sector.le32(base + 12))
            if entry.type != 0 && entry.sectors != 0 { entries.append(entry) }
        }
        return entries
    }

    /// True for the first sector of a FAT, NTFS or exFAT volume written without a partition
    /// table: such sectors also end with 55 AA, and their boot code occupies the entry area.
    static func looksLikeVolumeBootSector(_ sector: [UInt8]) -> Bool {
        guard sector[0] == 0xEB || sector[0] == 0xE9 else { return false }
        if sector.matches("NTFS    ", at: 3) || sector.matches("EXFAT   ", at: 3) { return true }
        if sector.matches("FAT32   ", at: 0x52) || sector.matches("FAT", at: 0x36) { return true }
        // A BPB without the informational type string: a plausible bytes-per-sector value
        // and a non-zero reserved-sector count where an MBR would have boot code.
        let bytesPerSector = sector.le16(11)
        return [512, 1024, 2048, 4096].contains(bytesPerSector) && sector.le16(14) != 0
            && [1, 2, 4, 8, 16, 32, 64, 128].contains(sector[13]) && (1...4).contains(sector[16])
    }

    /// The partitions of an MBR disk: the primaries (without extended containers) followed by
    /// the logical partitions of each extended partition.
    static func read(_ disk: BlockSource, primaries: [Entry]) throws -> PartitionTableReport {
        var report = PartitionTableReport(scheme: "mbr", sectorSize: 512, partitions: [], warnings: [])
        var logicals: [Partition] = []
        for entry in primaries {
            if extendedTypes.contains(entry.type) {
                logicals += try readLogicals(disk, extended: entry, firstIndex: 5 + logicals.count,
                                             warnings: &report.warnings)
            } else {
                report.partitions.append(partition(entry, index: entry.slot + 1, base: 0))
            }
        }
        report.partitions += logicals
        let diskSectors = disk.size / sectorSize
        for partition in report.partitions where partition.start / sectorSize + partition.size / sectorSize > diskSectors {
            report.warnings.append("mbr: partition \(partition.index) (sectors \(partition.start / sectorSize)+\(partition.size / sectorSize)) passes the end of the disk (\(diskSectors) sectors)")
        }
        return report
    }

    private static func partition(_ entry: Entry, index: Int, base: UInt64) -> Partition {
        Partition(index: index, start: (base + UInt64(entry.firstLBA)) * sectorSize,
                  size: UInt64(entry.sectors) * sectorSize, type: typeName(entry.type), name: nil, scheme: "mbr")
    }

    /// "0x83" style type names.
    static func typeName(_ type: UInt8) -> String {
        let hex = String(type, radix: 16)
        return "0x" + (hex.count == 1 ? "0" + hex : hex)
    }

    /// Follows the EBR chain of one extended partition. A chain that leaves the extended
    /// partition, loops, or hits a sector without 55 AA stops there with a warning: the
    /// logical partitions found before it are still listed.
    private static func readLogicals(_ disk: BlockSource, extended: Entry, firstIndex: Int,
                                     warnings: inout [String]) throws -> [Partition] {
        let extendedStart = UInt64(extended.firstLBA)
        let extendedEnd = extendedStart + UInt64(extended.sectors)
        let diskSectors = disk.size / sectorSize
        var result: [Partition] = []
        var visited: Set<UInt64> = []
        var ebr = extendedStart
        while true {
            guard ebr < extendedEnd, ebr < diskSectors else {
                warnings.append("mbr: EBR at sector \(ebr) lies outside the extended partition (sectors \(extendedStart)..<\(extendedEnd)) or the disk; logical partitions after #\(firstIndex + result.count - 1) are not listed")
                break
            }
            guard visited.insert(ebr).inserted else {
                warnings.append("mbr: the EBR chain loops back to sector \(ebr); stopped after \(result.count) logical partitions")
                break
            }
            guard result.count < maxLogicalPartitions else {
                warnings.append("mbr: more than \(maxLogicalPartitions) logical partitions; the rest are not listed")
                break
            }
            let sector = try disk.bytes(at: ebr * sectorSize, count: 512)
            guard sector[510] == 0x55, sector[511] == 0xAA else {
                warnings.append("mbr: EBR at sector \(ebr) has no 55 AA signature; logical partitions from #\(firstIndex + result.count) on are not listed")
                break
            }
            let logical = Entry(slot: 0, type: sector[0x1BE + 4], firstLBA: sector.le32(0x1BE + 8), sectors: sector.le32(0x1BE + 12))
            if logical.type != 0 && logical.sectors != 0 {
                result.append(partition(logical, index: firstIndex + result.count, base: ebr))
            }
            let next = Entry(slot: 1, type: sector[0x1CE + 4], firstLBA: sector.le32(0x1CE + 8), sectors: sector.le32(0x1CE + 12))
            guard next.type != 0, next.firstLBA != 0 || next.sectors != 0 else { break }
            if !extendedTypes.contains(next.type) {
                warnings.append("mbr: EBR at sector \(ebr) links to a next EBR of type \(typeName(next.type)); treated as extended")
            }
            ebr = extendedStart + UInt64(next.firstLBA)
        }
        return result
    }
}
