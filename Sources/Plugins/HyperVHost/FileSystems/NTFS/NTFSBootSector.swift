import Foundation
import PluginAPI

/// The NTFS boot sector: the first sector of the volume; a copy sits in the sector just past the
/// sectors the volume counts (normally the last sector of the partition).
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 3 | jump instruction (EB 52 90) |
/// | 0x03 | 8 | OEM id `"NTFS    "` (four spaces) |
/// | 0x0B | 2 | bytes per sector: 512, 1024, 2048 or 4096 |
/// | 0x0D | 1 | sectors per cluster: 1…128 as is; 0xF4…0xFF (a negative byte −n) mean 2ⁿ sectors, for clusters above 64 KiB |
/// | 0x0E | 2 | reserved sectors (0 on NTFS) |
/// | 0x15 | 1 | media descriptor (0xF8) |
/// | 0x18 | 16 | CHS geometry and hidden sectors (ignored) |
/// | 0x28 | 8 | total sectors of the volume |
/// | 0x30 | 8 | LCN (cluster number) of the first $MFT record |
/// | 0x38 | 8 | LCN of $MFTMirr, the copy of the first four MFT records |
/// | 0x40 | 1 | MFT record size, signed: > 0 clusters per record; < 0 the size is 2^(−value) bytes (0xF6 = 1024) |
/// | 0x44 | 1 | index block (INDX) size, coded the same way |
/// | 0x48 | 8 | volume serial number |
/// | 0x1FE | 2 | 55 AA |
///
/// Windows supports clusters up to 2 MiB; MFT records are 1024 bytes (4096 on 4Kn disks) and
/// index blocks 4096 bytes. Everything here is validated before any other structure is read.
struct NTFSBootSector {
    static let oemID = "NTFS    "
    static let maximumClusterSize: UInt64 = 2 << 20

    let bytesPerSector: UInt64
    let clusterSize: UInt64
    let totalSectors: UInt64
    /// Clusters of the volume: valid LCNs are 0..<clusterCount.
    let clusterCount: UInt64
    let mftCluster: UInt64
    let mftMirrorCluster: UInt64
    let recordSize: Int
    let indexBlockSize: Int
    let serialNumber: UInt64

    /// True when the sector carries the NTFS OEM id at offset 3.
    static func hasSignature(_ sector: [UInt8]) -> Bool { sector.matches(oemID, at: 3) }

    /// Parses and validates a boot sector; `volumeSize` is the size of the block source and
    /// `what` names the copy ("boot sector", "backup boot sector") in messages.
    init(_ sector: [UInt8], volumeSize: UInt64, what: String = "boot sector") throws {
        guard sector.count >= 512, Self.hasSignature(sector) else {
            throw NTFSError.corrupt("\(what): OEM id is \"\(sector.printable(3, 8))\", not \"NTFS    \"; this is not an NTFS volume")
        }
        bytesPerSector = UInt64(sector.le16(0x0B))
        guard [512, 1024, 2048, 4096].contains(bytesPerSector) else {
            throw NTFSError.corrupt("\(what): \(bytesPerSector) bytes per sector (expected 512, 1024, 2048 or 4096)")
        }
        let code = sector.u8(0x0D)
        let sectorsPerCluster: UInt64
        if code <= 0x80 {
            sectorsPerCluster = UInt64(code)
            guard sectorsPerCluster.isPowerOfTwo else {
                throw NTFSError.corrupt("\(what): \(code) sectors per cluster is not a power of two")
            }
        } else {
            let shift = 256 - Int(code)
            guard shift <= 21 else { throw NTFSError.corrupt("\(what): sectors-per-cluster code \(ntfsHex(code)) is out of range") }
            sectorsPerCluster = 1 << UInt64(shift)
        }
        clusterSize = bytesPerSector * sectorsPerCluster
        guard clusterSize <= Self.maximumClusterSize else {
            throw NTFSError.corrupt("\(what): cluster size \(clusterSize) bytes exceeds the NTFS maximum of 2 MiB")
        }
        totalSectors = sector.le64(0x28)
        guard let totalBytes = totalSectors.times(bytesPerSector), totalBytes >= clusterSize else {
            throw NTFSError.corrupt("\(what): total sector count \(totalSectors) is impossible")
        }
        guard totalBytes <= volumeSize else {
            throw NTFSError.corrupt("\(what): the volume has \(totalBytes) bytes but only \(volumeSize) are present (truncated partition or image)")
        }
        clusterCount = totalBytes / clusterSize
        mftCluster = sector.le64(0x30)
        mftMirrorCluster = sector.le64(0x38)
        guard mftCluster < clusterCount, mftMirrorCluster < clusterCount else {
            throw NTFSError.corrupt("\(what): $MFT at cluster \(mftCluster) or $MFTMirr at cluster \(mftMirrorCluster) lies past the end of the volume (\(clusterCount) clusters)")
        }
        recordSize = try Self.structureSize(code: sector.u8(0x40), clusterSize: clusterSize, what: "\(what): MFT record size")
        indexBlockSize = try Self.structureSize(code: sector.u8(0x44), clusterSize: clusterSize, what: "\(what): index block size")
        serialNumber = sector.le64(0x48)
    }

    /// Decodes a size coded as clusters (positive) or as a power of two (negative) and checks
    /// that it is a power of two between 512 bytes and 64 KiB.
    static func structureSize(code: UInt8, clusterSize: UInt64, what: String) throws -> Int {
        let signed = Int8(bitPattern: code)
        var size: UInt64 = 0
        if signed > 0 {
            size = UInt64(signed) * clusterSize
        } else if signed < 0, -Int(signed) < 32 {
            size = 1 << UInt64(-Int(signed))
        }
        guard size.isPowerOfTwo, size >= 512, size <= 65536 else {
            throw NTFSError.corrupt("\(what) code \(ntfsHex(code)) gives \(size) bytes (expected a power of two from 512 bytes to 64 KiB)")
        }
        return Int(size)
    }

    /// Reads the boot sector, falling back to the backup copy in the last sector of the volume
    /// (512 or 4096 bytes before its end) when the primary one is damaged. Throws the primary
    /// copy's error when no copy is usable.
    static func read(from volume: BlockSource) throws -> NTFSBootSector {
        guard volume.size >= 512 else {
            throw NTFSError.corrupt("volume of \(volume.size) bytes is too small to hold an NTFS boot sector")
        }
        let primary = try volume.bytes(at: 0, count: 512)
        do {
            return try NTFSBootSector(primary, volumeSize: volume.size)
        } catch let primaryError {
            // Only a damaged NTFS boot sector is replaced by the backup: a volume whose first
            // sector is something else (reformatted) may still end with a stale NTFS backup.
            guard hasSignature(primary) else { throw primaryError }
            for sectorSize in [UInt64(512), 4096] where volume.size >= sectorSize {
                guard let backup = try? volume.bytes(at: volume.size - sectorSize, count: 512), hasSignature(backup),
                      let boot = try? NTFSBootSector(backup, volumeSize: volume.size, what: "backup boot sector")
                else { continue }
                return boot
            }
            throw primaryError
        }
    }
}
