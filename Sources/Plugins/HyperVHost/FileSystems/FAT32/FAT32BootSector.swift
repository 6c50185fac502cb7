import Foundation
import PluginAPI

/// The FAT32 boot sector and BIOS parameter block (BPB), sector 0 of the volume, little-endian:
///
///     0x00  3 jump (EB xx 90 or E9 xx xx)     0x03  8 OEM name
///     0x0B  2 bytes per sector (512…4096)     0x0D  1 sectors per cluster (power of two)
///     0x0E  2 reserved sectors (before FAT 1) 0x10  1 number of FATs
///     0x11  2 root entries (0 on FAT32)       0x13  2 total sectors, 16-bit (0 on FAT32)
///     0x16  2 sectors per FAT, 16-bit (0 on FAT32)
///     0x20  4 total sectors, 32-bit           0x24  4 sectors per FAT, 32-bit
///     0x28  2 flags (bit 7: only one FAT active, bits 0–3: which)
///     0x2C  4 cluster of the root directory   0x47 11 volume label   0x52 8 "FAT32   "
///     0x1FE 2 signature 55 AA
///
/// The FATs follow the reserved sectors; the data area follows the FATs and starts with
/// cluster 2. The type is decided from the BPB shape (no 16-bit sizes, no fixed root
/// directory, a 32-bit FAT size), as Linux does, not from the cluster count.
struct FAT32BootSector {
    let bytesPerSector: UInt64
    let sectorsPerCluster: UInt64
    let clusterSize: UInt64
    let totalSectors: UInt64
    let rootCluster: UInt32
    /// Clusters in the data area; valid cluster numbers are 2 ... clusterCount + 1.
    let clusterCount: UInt32
    /// Byte offset of the FAT in use (the first, unless mirroring is off and another is active).
    let fatOffset: UInt64
    /// Byte offset of cluster 2.
    let dataOffset: UInt64
    /// The label in the BPB ("NO NAME" and blanks become nil); the root directory's volume
    /// label entry takes precedence.
    let label: String?

    var maxCluster: UInt32 { clusterCount + 1 }

    /// True when sector 0 has the FAT32 BPB shape (checked by `init` in detail).
    static func looksValid(_ raw: [UInt8]) -> Bool {
        raw.count >= 512 && raw[510] == 0x55 && raw[511] == 0xAA && (raw[0] == 0xEB || raw[0] == 0xE9)
            && [512, 1024, 2048, 4096].contains(raw.le16(0x0B)) && raw.le16(0x11) == 0 && raw.le16(0x16) == 0
            && raw.le32(0x24) != 0
    }

    init(_ raw: [UInt8], volumeSize: UInt64) throws {
        func bad(_ message: String) -> PluginError { PluginError(.corrupt, "fat32: boot sector: \(message)") }
        guard raw.count >= 512, raw[510] == 0x55, raw[511] == 0xAA else { throw bad("no 55 AA signature") }
        bytesPerSector = UInt64(raw.le16(0x0B))
        guard [512, 1024, 2048, 4096].contains(bytesPerSector) else { throw bad("\(bytesPerSector) bytes per sector is not 512, 1024, 2048 or 4096") }
        sectorsPerCluster = UInt64(raw[0x0D])
        guard sectorsPerCluster.isPowerOfTwo else { throw bad("\(sectorsPerCluster) sectors per cluster is not a power of two") }
        clusterSize = bytesPerSector * sectorsPerCluster
        let reserved = UInt64(raw.le16(0x0E)), fats = UInt64(raw[0x10])
        guard reserved >= 1 else { throw bad("no reserved sectors") }
        guard (1...4).contains(fats) else { throw bad("\(fats) FATs (expected 1...4)") }
        guard raw.le16(0x11) == 0, raw.le16(0x16) == 0 else {
            throw PluginError(.unsupported, "fat32: the volume is FAT12 or FAT16 (fixed root directory or 16-bit FAT size), not FAT32")
        }
        let fatSectors = UInt64(raw.le32(0x24))
        guard fatSectors > 0 else { throw bad("the FAT size is 0") }
        totalSectors = raw.le16(0x13) != 0 ? UInt64(raw.le16(0x13)) : UInt64(raw.le32(0x20))
        guard totalSectors * bytesPerSector <= volumeSize else {
            throw bad("\(totalSectors) sectors of \(bytesPerSector) bytes do not fit in the volume (\(volumeSize) bytes)")
        }
        let dataSector = reserved + fats * fatSectors
        guard dataSector < totalSectors else { throw bad("the FATs (\(fats) × \(fatSectors) sectors) leave no data area") }
        let clusters = (totalSectors - dataSector) / sectorsPerCluster
        // The FAT must have an entry for every cluster (plus the two reserved entries).
        let fatEntries = fatSectors * bytesPerSector / 4
        guard clusters >= 1, fatEntries >= 3 else { throw bad("no data clusters") }
        clusterCount = UInt32(min(clusters, fatEntries - 2, 0x0FFF_FFF5))
        let flags = raw.le16(0x28)
        let active = flags & 0x80 != 0 ? UInt64(flags & 0x0F) : 0
        guard active < fats else { throw bad("active FAT \(active) does not exist (\(fats) FATs)") }
        fatOffset = (reserved + active * fatSectors) * bytesPerSector
        dataOffset = dataSector * bytesPerSector
        rootCluster = raw.le32(0x2C) & 0x0FFF_FFFF
        guard rootCluster >= 2, rootCluster <= clusterCount + 1 else {
            throw bad("root directory cluster \(rootCluster) is not within 2...\(clusterCount + 1)")
        }
        label = raw[0x42] == 0x29 ? FAT32BootSector.cleanLabel(raw.bytes(0x47, 11)) : nil
    }

    /// Byte offset of a cluster (which the caller has checked to be valid).
    func offset(ofCluster cluster: UInt32) -> UInt64 {
        dataOffset + UInt64(cluster - 2) * clusterSize
    }

    /// An 11-byte label without padding; nil for blanks and "NO NAME".
    static func cleanLabel(_ bytes: [UInt8]) -> String? {
        let text = FAT32Directory.decodeOEM(Array(bytes.reversed().drop { $0 == 0x20 || $0 == 0 }.reversed()))
        return text.isEmpty || text == "NO NAME" ? nil : text
    }
}
