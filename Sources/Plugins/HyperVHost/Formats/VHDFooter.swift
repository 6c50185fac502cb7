import Foundation

/// The VHD footer (Microsoft's "Virtual Hard Disk Image Format Specification"; qemu calls the
/// format `vpc`).
///
/// Every VHD ends with this 512-byte footer; dynamic and differencing disks also keep a copy at
/// offset 0. All fields are big-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | Cookie, ASCII `conectix` |
/// | 8 | 4 | Features (bit 1 "reserved" is always set) |
/// | 12 | 4 | File Format Version, 0x00010000 |
/// | 16 | 8 | Data Offset: the dynamic header's offset; all ones for a fixed disk |
/// | 24 | 4 | Time Stamp: seconds since 2000-01-01 00:00:00 UTC |
/// | 28 | 4 | Creator Application, e.g. `win ` (Hyper-V), `qemu`, `qem2`, `vpc ` |
/// | 32 | 4 | Creator Version |
/// | 36 | 4 | Creator Host OS, `Wi2k` or `Mac ` |
/// | 40 | 8 | Original Size in bytes |
/// | 48 | 8 | Current Size in bytes: the virtual disk size |
/// | 56 | 4 | Disk Geometry: cylinders (2), heads (1), sectors per track (1) |
/// | 64 | 4 | Disk Type: 2 fixed, 3 dynamic, 4 differencing |
/// | 68 | 4 | Checksum: ones' complement of the sum of all 512 bytes, this field taken as zero |
/// | 72 | 16 | Unique Id; a differencing child records its parent's |
/// | 88 | 1 | Saved State |
/// | 89 | 427 | reserved |
///
/// The virtual size is Current Size, as Hyper-V and Windows use it. (qemu instead sizes disks
/// whose creator is `vpc ` or `qemu` by their CHS geometry, cylinders · heads · sectors · 512,
/// unless the geometry is the maximum 65535/16/255. For files qemu made the two agree, because
/// qemu stores the geometry's size as Current Size; for Virtual PC files qemu may show fewer
/// sectors than dpm.) A fixed disk's data is the first virtual-size bytes of the file.
struct VHDFooter {
    static let size = 512
    enum DiskType: UInt32 { case fixed = 2, dynamic = 3, differencing = 4 }

    var features: UInt32 = 2
    var formatVersion: UInt32 = 0x0001_0000
    var dataOffset: UInt64
    var timestamp: UInt32
    var creatorApplication: String
    var creatorVersion: UInt32
    var creatorHostOS: String
    var originalSize: UInt64
    var currentSize: UInt64
    var cylinders: UInt16
    var heads: UInt8
    var sectorsPerTrack: UInt8
    var diskType: DiskType
    var uniqueId: MSGUID
    var savedState: UInt8 = 0

    /// Ones' complement of the byte sum, `checksumOffset`'s 4 bytes excluded.
    static func checksum(_ bytes: [UInt8], excluding checksumOffset: Int) -> UInt32 {
        var sum: UInt32 = 0
        for (index, byte) in bytes.enumerated() where index < checksumOffset || index >= checksumOffset + 4 {
            sum = sum &+ UInt32(byte)
        }
        return ~sum
    }

    /// Why a footer copy was rejected.
    struct Rejection: Error { let text: String }

    static func parse(_ bytes: [UInt8]) -> Result<VHDFooter, Rejection> {
        guard bytes.count >= size, bytes.matches("conectix", at: 0) else { return .failure(Rejection(text: "bad cookie")) }
        let footer = Array(bytes[0..<size])
        let stored = footer.be32(64)
        guard stored == checksum(footer, excluding: 64) else {
            return .failure(Rejection(text: "checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(checksum(footer, excluding: 64), radix: 16)))"))
        }
        guard let type = DiskType(rawValue: footer.be32(60)) else {
            return .failure(Rejection(text: "unknown disk type \(footer.be32(60))"))
        }
        return .success(VHDFooter(
            features: footer.be32(8), formatVersion: footer.be32(12), dataOffset: footer.be64(16),
            timestamp: footer.be32(24), creatorApplication: footer.printable(28, 4), creatorVersion: footer.be32(32),
            creatorHostOS: footer.printable(36, 4), originalSize: footer.be64(40), currentSize: footer.be64(48),
            cylinders: footer.be16(56), heads: footer.u8(58), sectorsPerTrack: footer.u8(59), diskType: type,
            uniqueId: MSGUID(raw: footer.bytes(68, 16)), savedState: footer.u8(84)))
    }

    /// The 512-byte on-disk form with a valid checksum.
    func serialized() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDFooter.size)
        bytes.putASCII("conectix", at: 0)
        bytes.putBE32(features, at: 8)
        bytes.putBE32(formatVersion, at: 12)
        bytes.putBE64(dataOffset, at: 16)
        bytes.putBE32(timestamp, at: 24)
        bytes.putASCII(String(creatorApplication.prefix(4)), at: 28)
        bytes.putBE32(creatorVersion, at: 32)
        bytes.putASCII(String(creatorHostOS.prefix(4)), at: 36)
        bytes.putBE64(originalSize, at: 40)
        bytes.putBE64(currentSize, at: 48)
        bytes.putBE16(cylinders, at: 56)
        bytes.put(heads, at: 58)
        bytes.put(sectorsPerTrack, at: 59)
        bytes.putBE32(diskType.rawValue, at: 60)
        bytes.put(uniqueId.bytes, at: 68)
        bytes.put(savedState, at: 84)
        bytes.putBE32(VHDFooter.checksum(bytes, excluding: 64), at: 64)
        return bytes
    }

    /// The size of the virtual disk: Current Size (see the type's documentation).
    var virtualSize: UInt64 { currentSize }

    /// The size the CHS geometry describes (cylinders · heads · sectors per track · 512).
    var geometrySize: UInt64 { UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack) * 512 }

    /// The CHS geometry for a disk of `size` bytes, by the algorithm in the VHD specification
    /// (appendix "CHS calculation"): capped at 65535 · 16 · 255 sectors; 255 sectors per track
    /// and 16 heads above 65535 · 16 · 63 sectors; otherwise 17, 31 or 63 sectors per track with
    /// at least 4 heads, choosing the first that keeps cylinders · heads under 1024 · heads.
    static func geometry(forSize size: UInt64) -> (cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
        var totalSectors = size / 512
        if totalSectors > 65535 * 16 * 255 { totalSectors = 65535 * 16 * 255 }
        var sectorsPerTrack: UInt64, heads: UInt64, cylinderTimesHeads: UInt64
        if totalSectors >= 65535 * 16 * 63 {
            sectorsPerTrack = 255
            heads = 16
            cylinderTimesHeads = totalSectors / sectorsPerTrack
        } else {
            sectorsPerTrack = 17
            cylinderTimesHeads = totalSectors / sectorsPerTrack
            heads = (cylinderTimesHeads + 1023) / 1024
            if heads < 4 { heads = 4 }
            if cylinderTimesHeads >= heads * 1024 || heads > 16 {
                sectorsPerTrack = 31
                heads = 16
                cylinderTimesHeads = totalSectors / sectorsPerTrack
            }
            if cylinderTimesHeads >= heads * 1024 {
                sectorsPerTrack = 63
                heads = 16
                cylinderTimesHeads = totalSectors / sectorsPerTrack
            }
        }
        let cylinders = Swift.min(cylinderTimesHeads / heads, 65535)
        return (UInt16(cylinders), UInt8(heads), UInt8(sectorsPerTrack))
    }

    /// Seconds since 2000-01-01 00:00:00 UTC, the VHD epoch, for `date`.
    static func timestamp(for date: Date = Date()) -> UInt32 {
        let seconds = date.timeIntervalSince1970 - 946_684_800
        return seconds <= 0 ? 0 : UInt32(Swift.min(seconds, Double(UInt32.max)))
    }
}
