import Foundation

/// The VHDX block allocation table (MS-VHDX 2.5): one 64-bit entry per payload block, with an
/// entry for a sector bitmap block after every `chunkRatio` payload entries.
///
/// Entry layout (little-endian UInt64): bits 0–2 State, bits 3–19 reserved, bits 20–63
/// FileOffsetMB (the block's file offset in MiB, so `offset = entry & ~0xFFFFF`).
///
/// Interleaving: `chunkRatio = 2^23 · logicalSectorSize / blockSize` payload blocks share one
/// 1 MiB sector bitmap block (2^23 bits, one per logical sector). Payload block `b` is entry
/// `b + b / chunkRatio`; the sector bitmap of chunk `c` is entry `c · (chunkRatio + 1) + chunkRatio`.
/// Within that bitmap, payload block `b` owns bits from `(b mod chunkRatio) · sectorsPerBlock`,
/// bit `i % 8` of byte `i / 8` for sector `i` (least significant bit first); a set bit means the
/// sector is in this file, a clear one that it comes from the parent.
///
/// Entry counts: a disk of `n = ceil(size / blockSize)` payload blocks has
/// `n + (n - 1) / chunkRatio` entries, or `ceil(n / chunkRatio) · (chunkRatio + 1)` when it has a
/// parent (the last sector bitmap entry must exist).
///
/// Payload states: 0 NOT_PRESENT, 1 UNDEFINED, 2 ZERO, 3 UNMAPPED (5 in the 0.95 draft, still
/// accepted), 6 FULLY_PRESENT, 7 PARTIALLY_PRESENT (differencing only). Sector bitmap states:
/// 0 NOT_PRESENT, 6 PRESENT. qemu writes ZERO for never-written blocks of dynamic files ("block
/// state zero", non-standard but its default); it is read as zeros like any ZERO block.
struct VHDXBlockAllocationTable {
    enum PayloadState: UInt8 {
        case notPresent = 0, undefined = 1, zero = 2, unmapped = 3, unmappedDraft = 5
        case fullyPresent = 6, partiallyPresent = 7
    }

    static let sectorBitmapPresent: UInt64 = 6
    static let mebibyte: UInt64 = 1 << 20

    let entries: [UInt64]
    let chunkRatio: UInt64
    let payloadBlockCount: UInt64

    /// Payload blocks sharing one sector bitmap block.
    static func chunkRatio(blockSize: UInt64, logicalSectorSize: UInt64) -> UInt64 {
        ((1 << 23) * logicalSectorSize) / blockSize
    }

    /// The number of BAT entries a disk needs.
    static func entryCount(virtualSize: UInt64, blockSize: UInt64, logicalSectorSize: UInt64, hasParent: Bool) -> UInt64 {
        let ratio = chunkRatio(blockSize: blockSize, logicalSectorSize: logicalSectorSize)
        let blocks = virtualSize.divideRoundingUp(blockSize)
        if hasParent { return blocks.divideRoundingUp(ratio) * (ratio + 1) }
        return blocks == 0 ? 0 : blocks + (blocks - 1) / ratio
    }

    func payloadIndex(_ block: UInt64) -> Int { Int(block + block / chunkRatio) }

    func bitmapIndex(chunk: UInt64) -> Int { Int(chunk * (chunkRatio + 1) + chunkRatio) }

    /// The state and file offset of payload block `block` (< payloadBlockCount).
    func payload(_ block: UInt64) -> (state: PayloadState, fileOffset: UInt64) {
        let entry = entries[payloadIndex(block)]
        return (PayloadState(rawValue: UInt8(entry & 7)) ?? .notPresent, entry & ~(VHDXBlockAllocationTable.mebibyte - 1))
    }

    /// The file offset of the sector bitmap block of `chunk`, or nil if it is not present.
    func sectorBitmapOffset(chunk: UInt64) -> UInt64? {
        let index = bitmapIndex(chunk: chunk)
        guard index < entries.count else { return nil }
        let entry = entries[index]
        guard entry & 7 == VHDXBlockAllocationTable.sectorBitmapPresent else { return nil }
        return entry & ~(VHDXBlockAllocationTable.mebibyte - 1)
    }

    /// Reads the BAT and checks every entry dpm will use against the file.
    static func read(from file: FileReader, region: VHDXRegionTable.Entry, metadata: VHDXMetadata) throws -> VHDXBlockAllocationTable {
        let path = file.path
        let blockSize = UInt64(metadata.blockSize), sector = UInt64(metadata.logicalSectorSize)
        let ratio = chunkRatio(blockSize: blockSize, logicalSectorSize: sector)
        let count = entryCount(virtualSize: metadata.virtualDiskSize, blockSize: blockSize,
                               logicalSectorSize: sector, hasParent: metadata.hasParent)
        guard count * 8 <= UInt64(region.length) else {
            throw DiskError.corrupt(path, "BAT region holds \(region.length / 8) entries but a \(metadata.virtualDiskSize)-byte disk needs \(count)")
        }
        guard let batEnd = region.fileOffset.plus(count * 8), batEnd <= file.size else {
            throw DiskError.corrupt(path, "BAT (offset \(region.fileOffset), \(count) entries) extends past the end of the file (size \(file.size))")
        }
        guard count * 8 <= DiskLimits.maxMetadataBytes else {
            throw DiskError.unsupported(path, "BAT of \(count) entries is larger than dpm loads (\(DiskLimits.maxMetadataBytes.byteDescription))")
        }
        var entries = [UInt64](repeating: 0, count: Int(count))
        try entries.withUnsafeMutableBytes { try file.read(at: region.fileOffset, into: $0) }
        for i in entries.indices { entries[i] = UInt64(littleEndian: entries[i]) }
        let blocks = metadata.virtualDiskSize.divideRoundingUp(blockSize)
        let table = VHDXBlockAllocationTable(entries: entries, chunkRatio: ratio, payloadBlockCount: blocks)
        try table.validate(file: file, metadata: metadata)
        return table
    }

    private func validate(file: FileReader, metadata: VHDXMetadata) throws {
        let path = file.path, blockSize = UInt64(metadata.blockSize)
        for block in 0..<payloadBlockCount {
            let index = payloadIndex(block)
            let raw = entries[index]
            guard let state = PayloadState(rawValue: UInt8(raw & 7)) else {
                throw DiskError.corrupt(path, "BAT entry \(index) (block \(block)) has reserved state \(raw & 7)")
            }
            switch state {
            case .fullyPresent, .partiallyPresent:
                if state == .partiallyPresent && !metadata.hasParent {
                    throw DiskError.corrupt(path, "BAT entry \(index) (block \(block)) is partially present, which only a differencing disk may be")
                }
                let offset = raw & ~(VHDXBlockAllocationTable.mebibyte - 1)
                let needed = Swift.min(blockSize, metadata.virtualDiskSize - block * blockSize)
                guard offset >= VHDXBlockAllocationTable.mebibyte else {
                    throw DiskError.corrupt(path, "BAT entry \(index) (block \(block)) points into the header section (offset \(offset))")
                }
                guard let end = offset.plus(needed), end <= file.size else {
                    throw DiskError.corrupt(path, "BAT entry \(index) points past the end of the file (offset \(offset), file size \(file.size))")
                }
                if state == .partiallyPresent {
                    guard let bitmap = sectorBitmapOffset(chunk: block / chunkRatio) else {
                        throw DiskError.corrupt(path, "block \(block) is partially present but its sector bitmap block (BAT entry \(bitmapIndex(chunk: block / chunkRatio))) is not")
                    }
                    guard bitmap >= VHDXBlockAllocationTable.mebibyte, let bitmapEnd = bitmap.plus(VHDXBlockAllocationTable.mebibyte),
                          bitmapEnd <= file.size else {
                        throw DiskError.corrupt(path, "sector bitmap BAT entry \(bitmapIndex(chunk: block / chunkRatio)) points past the end of the file (offset \(bitmap), file size \(file.size))")
                    }
                }
            default:
                break
            }
        }
    }
}
