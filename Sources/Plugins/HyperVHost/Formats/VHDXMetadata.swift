import Foundation

/// The VHDX metadata region (MS-VHDX 2.6): block size, disk size, sector sizes, parent locator.
///
/// The region starts with a table (little-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | Signature, ASCII `metadata` |
/// | 8 | 2 | reserved |
/// | 10 | 2 | EntryCount, at most 2047 |
/// | 12 | 20 | reserved |
/// | 32 + 32·i | 32 | entry i |
///
/// Each entry: ItemId (16, `MSGUID`), Offset (4, from the start of the region, at least 64 KiB;
/// zero when Length is zero), Length (4, at most 1 MiB), flags (4: bit 0 IsUser, bit 1
/// IsVirtualDisk, bit 2 IsRequired: a reader that does not know a required item must refuse the
/// file), reserved (4). The items dpm reads:
///
/// | item | ItemId | content |
/// |---|---|---|
/// | File Parameters | CAA16737-FA36-4D43-B3B6-33F0AA44E76B | BlockSize (4: power of two, 1 MiB – 256 MiB), flags (4: bit 0 LeaveBlocksAllocated (fixed disk), bit 1 HasParent) |
/// | Virtual Disk Size | 2FA54224-CD1B-4876-B211-5DBED83BF4B8 | 8 bytes, a multiple of the logical sector size, at most 64 TiB |
/// | Virtual Disk ID (page 83) | BECA12AB-B2E6-4523-93EF-C309E000C746 | a GUID |
/// | Logical Sector Size | 8141BF1D-A96F-4709-BA47-F233A8FAAB5F | 4 bytes, 512 or 4096 |
/// | Physical Sector Size | CDA348C7-445D-4471-9CC9-E9885251C556 | 4 bytes, 512 or 4096 |
/// | Parent Locator | A8D35F2D-B30B-454D-ABF7-D3D84834AB0C | `VHDXParentLocator`, required when HasParent |
struct VHDXMetadata {
    static let fileParametersGuid = MSGUID(0xCAA16737, 0xFA36, 0x4D43, [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B])
    static let virtualDiskSizeGuid = MSGUID(0x2FA54224, 0xCD1B, 0x4876, [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8])
    static let page83Guid = MSGUID(0xBECA12AB, 0xB2E6, 0x4523, [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46])
    static let logicalSectorSizeGuid = MSGUID(0x8141BF1D, 0xA96F, 0x4709, [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F])
    static let physicalSectorSizeGuid = MSGUID(0xCDA348C7, 0x445D, 0x4471, [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56])
    static let parentLocatorGuid = MSGUID(0xA8D35F2D, 0xB30B, 0x454D, [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C])
    static let maxVirtualSize: UInt64 = 64 << 40
    static let itemsOffset = 64 * 1024

    var blockSize: UInt32
    var leaveBlocksAllocated: Bool
    var hasParent: Bool
    var virtualDiskSize: UInt64
    var page83: MSGUID
    var logicalSectorSize: UInt32
    var physicalSectorSize: UInt32
    var parentLocator: VHDXParentLocator?

    /// Reads and validates the metadata region described by `region`.
    static func read(from file: FileReader, region: VHDXRegionTable.Entry) throws -> VHDXMetadata {
        let path = file.path
        guard region.end <= file.size else {
            throw DiskError.corrupt(path, "metadata region (offset \(region.fileOffset), length \(region.length)) extends past the end of the file (size \(file.size))")
        }
        let table = try file.readBytes(at: region.fileOffset, count: itemsOffset)
        guard table.matches("metadata", at: 0) else {
            throw DiskError.corrupt(path, "metadata table at offset \(region.fileOffset) has a bad signature")
        }
        let count = Int(table.le16(10))
        guard count <= 2047 else { throw DiskError.corrupt(path, "metadata table has \(count) entries (at most 2047)") }
        var items: [MSGUID: [UInt8]] = [:]
        for index in 0..<count {
            let base = 32 + 32 * index
            let id = MSGUID(table, at: base)
            let offset = table.le32(base + 16), length = table.le32(base + 20)
            let required = table.le32(base + 24) & 4 != 0
            let known = [fileParametersGuid, virtualDiskSizeGuid, page83Guid, logicalSectorSizeGuid,
                         physicalSectorSizeGuid, parentLocatorGuid].contains(id)
            if !known {
                if required { throw DiskError.unsupported(path, "required metadata item \(id) is not one dpm knows") }
                continue
            }
            guard items[id] == nil else { throw DiskError.corrupt(path, "metadata item \(id) appears twice") }
            guard length <= 1 << 20, UInt64(offset) + UInt64(length) <= UInt64(region.length),
                  length == 0 || offset >= UInt32(itemsOffset) else {
                throw DiskError.corrupt(path, "metadata item \(id) (offset \(offset), length \(length)) lies outside the metadata region")
            }
            items[id] = try file.readBytes(at: region.fileOffset + UInt64(offset), count: Int(length))
        }
        func item(_ id: MSGUID, _ name: String, minimum: Int) throws -> [UInt8] {
            guard let bytes = items[id] else { throw DiskError.corrupt(path, "required metadata item \(name) is missing") }
            guard bytes.count >= minimum else { throw DiskError.corrupt(path, "metadata item \(name) is \(bytes.count) bytes, expected \(minimum)") }
            return bytes
        }
        let parameters = try item(fileParametersGuid, "File Parameters", minimum: 8)
        let size = try item(virtualDiskSizeGuid, "Virtual Disk Size", minimum: 8).le64(0)
        let page83 = MSGUID(try item(page83Guid, "Page 83 Data", minimum: 16), at: 0)
        let logical = try item(logicalSectorSizeGuid, "Logical Sector Size", minimum: 4).le32(0)
        let physical = try item(physicalSectorSizeGuid, "Physical Sector Size", minimum: 4).le32(0)
        let blockSize = parameters.le32(0)
        guard UInt64(blockSize).isPowerOfTwo, blockSize >= 1 << 20, blockSize <= 256 << 20 else {
            throw DiskError.corrupt(path, "block size \(blockSize) is not a power of two between 1 MiB and 256 MiB")
        }
        guard logical == 512 || logical == 4096 else {
            throw DiskError.corrupt(path, "logical sector size \(logical) (must be 512 or 4096)")
        }
        guard physical == 512 || physical == 4096 else {
            throw DiskError.corrupt(path, "physical sector size \(physical) (must be 512 or 4096)")
        }
        guard size > 0, size % UInt64(logical) == 0, size <= maxVirtualSize else {
            throw DiskError.corrupt(path, "virtual disk size \(size) is not a positive multiple of the \(logical)-byte sector size up to 64 TiB")
        }
        let hasParent = parameters.le32(4) & 2 != 0
        var locator: VHDXParentLocator?
        if hasParent {
            guard let bytes = items[parentLocatorGuid] else {
                throw DiskError.corrupt(path, "the file parameters say the disk has a parent, but there is no parent locator")
            }
            locator = try VHDXParentLocator.parse(bytes, path: path)
        }
        return VHDXMetadata(blockSize: blockSize, leaveBlocksAllocated: parameters.le32(4) & 1 != 0,
                            hasParent: hasParent, virtualDiskSize: size, page83: page83,
                            logicalSectorSize: logical, physicalSectorSize: physical, parentLocator: locator)
    }

    /// The whole metadata region (`regionLength` bytes): table and items, items from 64 KiB on.
    func serialized(regionLength: Int) -> [UInt8] {
        var region = [UInt8](repeating: 0, count: regionLength)
        var parameters = [UInt8](repeating: 0, count: 8)
        parameters.putLE32(blockSize, at: 0)
        parameters.putLE32((leaveBlocksAllocated ? 1 : 0) | (hasParent ? 2 : 0), at: 4)
        var size = [UInt8](repeating: 0, count: 8)
        size.putLE64(virtualDiskSize, at: 0)
        var logical = [UInt8](repeating: 0, count: 4)
        logical.putLE32(logicalSectorSize, at: 0)
        var physical = [UInt8](repeating: 0, count: 4)
        physical.putLE32(physicalSectorSize, at: 0)
        // (id, bytes, flags): 4 = IsRequired, 2 = IsVirtualDisk.
        var items: [(MSGUID, [UInt8], UInt32)] = [
            (VHDXMetadata.fileParametersGuid, parameters, 4),
            (VHDXMetadata.virtualDiskSizeGuid, size, 6),
            (VHDXMetadata.page83Guid, page83.bytes, 6),
            (VHDXMetadata.logicalSectorSizeGuid, logical, 6),
            (VHDXMetadata.physicalSectorSizeGuid, physical, 6),
        ]
        if let parentLocator { items.append((VHDXMetadata.parentLocatorGuid, parentLocator.serialized(), 4)) }
        region.putASCII("metadata", at: 0)
        region.putLE16(UInt16(items.count), at: 10)
        var offset = VHDXMetadata.itemsOffset
        for (index, (id, bytes, flags)) in items.enumerated() {
            let base = 32 + 32 * index
            region.put(id.bytes, at: base)
            region.putLE32(UInt32(offset), at: base + 16)
            region.putLE32(UInt32(bytes.count), at: base + 20)
            region.putLE32(flags, at: base + 24)
            region.put(bytes, at: offset)
            offset += (bytes.count + 7) & ~7
        }
        return region
    }
}

/// The parent locator metadata item of a differencing VHDX (MS-VHDX 2.6.2.6).
///
/// Layout (little-endian), offsets from the start of the item:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 16 | LocatorType; `B04AEFB7-D19E-4A81-B789-25B8E9445913` for a VHDX parent |
/// | 16 | 2 | reserved |
/// | 18 | 2 | KeyValueCount |
/// | 20 + 12·i | 12 | entry i: KeyOffset (4), ValueOffset (4), KeyLength (2), ValueLength (2) |
///
/// Offsets are from the start of the item and lengths in bytes; keys and values are UTF-16LE
/// without terminators. Keys for a VHDX parent: `parent_linkage` (the parent's DataWriteGuid
/// in braces, required), `parent_linkage2` (an alternative linkage), `relative_path`
/// (e.g. `.\base.vhdx`), `volume_path` (`\\?\Volume{…}\…`), `absolute_win32_path`
/// (`C:\…`).
struct VHDXParentLocator {
    static let vhdxLocatorType = MSGUID(0xB04AEFB7, 0xD19E, 0x4A81, [0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13])

    var locatorType: MSGUID
    /// Key/value pairs in file order (keys are unique).
    var entries: [(key: String, value: String)]

    func value(_ key: String) -> String? {
        entries.first { $0.key.caseInsensitiveCompare(key) == .orderedSame }?.value
    }

    static func parse(_ bytes: [UInt8], path: String) throws -> VHDXParentLocator {
        guard bytes.count >= 20 else {
            throw DiskError.corrupt(path, "parent locator is \(bytes.count) bytes, too short for its header")
        }
        let type = MSGUID(bytes, at: 0)
        let count = Int(bytes.le16(18))
        guard 20 + 12 * count <= bytes.count else {
            throw DiskError.corrupt(path, "parent locator claims \(count) entries but holds only \(bytes.count) bytes")
        }
        var entries: [(key: String, value: String)] = []
        for index in 0..<count {
            let base = 20 + 12 * index
            let keyOffset = Int(bytes.le32(base)), valueOffset = Int(bytes.le32(base + 4))
            let keyLength = Int(bytes.le16(base + 8)), valueLength = Int(bytes.le16(base + 10))
            guard keyLength > 0, keyOffset <= bytes.count - keyLength, valueOffset <= bytes.count - valueLength,
                  let key = bytes.utf16(keyOffset, keyLength, bigEndian: false),
                  let value = bytes.utf16(valueOffset, valueLength, bigEndian: false) else {
                throw DiskError.corrupt(path, "parent locator entry \(index) points outside the locator or is not valid UTF-16")
            }
            guard !entries.contains(where: { $0.key == key }) else {
                throw DiskError.corrupt(path, "parent locator has key \(key) twice")
            }
            entries.append((key, value))
        }
        return VHDXParentLocator(locatorType: type, entries: entries)
    }

    /// The on-disk form: header, entry table, then the strings.
    func serialized() -> [UInt8] {
        var strings: [UInt8] = []
        var table = [UInt8](repeating: 0, count: 20 + 12 * entries.count)
        table.put(locatorType.bytes, at: 0)
        table.putLE16(UInt16(entries.count), at: 18)
        let stringsBase = table.count
        for (index, entry) in entries.enumerated() {
            let key = utf16LEBytes(entry.key), value = utf16LEBytes(entry.value)
            let base = 20 + 12 * index
            table.putLE32(UInt32(stringsBase + strings.count), at: base)
            strings += key
            table.putLE32(UInt32(stringsBase + strings.count), at: base + 4)
            strings += value
            table.putLE16(UInt16(key.count), at: base + 8)
            table.putLE16(UInt16(value.count), at: base + 10)
        }
        return table + strings
    }
}
