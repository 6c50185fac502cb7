import Foundation

/// Writes a dynamic (or, over a parent, differencing) VHDX file in one pass.
///
/// File layout (every object 1 MiB aligned, as MS-VHDX requires):
///
/// | offset | content |
/// |---|---|
/// | 0 | file type identifier (`vhdxfile`, creator "dpm") |
/// | 64 KiB, 128 KiB | headers 1 and 2 (sequence numbers 1 and 2, LogGuid zero: no log to replay) |
/// | 192 KiB, 256 KiB | region table and its copy |
/// | 1 MiB | log, 1 MiB, empty (a hole) |
/// | 2 MiB | metadata region, 1 MiB |
/// | 3 MiB | BAT region, its entries rounded up to 1 MiB |
/// | after the BAT | payload blocks in the order they were first written, then sector bitmap blocks |
///
/// Streaming: a payload block is given the next free file offset the first time a write puts
/// non-zero data in it, and each write stores only its non-zero 4 KiB pieces, so zeros stay
/// holes and all-zero blocks stay NOT_PRESENT. `finish` writes the BAT, metadata, region
/// tables and finally the headers, then fsyncs.
///
/// A differencing child (`parent:`) allocates a block for every write, zeros included (they
/// hide the parent's data), and records written sectors in per-block sector bitmaps: blocks
/// written completely become FULLY_PRESENT, others PARTIALLY_PRESENT with a sector bitmap block.
/// Its parent locator holds `parent_linkage` (the parent's DataWriteGuid), `relative_path`
/// (Windows form, e.g. `.\base.vhdx`) and `absolute_win32_path` (the parent's path on this host).
final class VHDXWriter: DiskImageWriter {
    static let defaultBlockSize: UInt64 = 32 << 20
    static let mebibyte: UInt64 = 1 << 20
    static let metadataOffset: UInt64 = 2 << 20
    static let batOffset: UInt64 = 3 << 20

    private let file: FileWriter
    private var order: WriteOrder
    private let metadata: VHDXMetadata
    private let blockSize: UInt64
    private let chunkRatio: UInt64
    private let sectorsPerBlock: UInt64
    private var entries: [UInt64]
    private let batLength: UInt64
    private var nextFree: UInt64
    /// Per-block written-sector bitmaps of a differencing disk.
    private var bitmaps: [UInt64: SectorBitmap] = [:]
    private let isDifferencing: Bool

    init(path: String, virtualSize: UInt64, blockSize: UInt64, parent: VHDXImage? = nil) throws {
        try WriteOrder.checkSize(virtualSize, path: path, maximum: VHDXMetadata.maxVirtualSize, format: .vhdx)
        guard blockSize.isPowerOfTwo, blockSize >= 1 << 20, blockSize <= 256 << 20 else {
            throw DiskError.invalid(path, "VHDX block size \(blockSize) must be a power of two from 1 MiB to 256 MiB")
        }
        let sector = UInt64(parent?.metadata.logicalSectorSize ?? 512)
        var locator: VHDXParentLocator?
        if let parent {
            let absolute = URL(fileURLWithPath: parent.path).standardizedFileURL.path
            locator = VHDXParentLocator(locatorType: VHDXParentLocator.vhdxLocatorType, entries: [
                ("parent_linkage", parent.header.dataWriteGuid.braced),
                ("relative_path", VHDXWriter.windowsRelativePath(from: path, to: absolute)),
                ("absolute_win32_path", absolute),
            ])
        }
        metadata = VHDXMetadata(blockSize: UInt32(blockSize), leaveBlocksAllocated: false, hasParent: parent != nil,
                                virtualDiskSize: virtualSize, page83: .random(), logicalSectorSize: UInt32(sector),
                                physicalSectorSize: parent?.metadata.physicalSectorSize ?? 4096, parentLocator: locator)
        self.blockSize = blockSize
        isDifferencing = parent != nil
        chunkRatio = VHDXBlockAllocationTable.chunkRatio(blockSize: blockSize, logicalSectorSize: sector)
        sectorsPerBlock = blockSize / sector
        let count = VHDXBlockAllocationTable.entryCount(virtualSize: virtualSize, blockSize: blockSize,
                                                        logicalSectorSize: sector, hasParent: parent != nil)
        entries = [UInt64](repeating: 0, count: Int(count))
        batLength = Swift.max(VHDXWriter.mebibyte, (count * 8).roundedUp(toPowerOfTwo: VHDXWriter.mebibyte) ?? 0)
        nextFree = VHDXWriter.batOffset + batLength
        order = WriteOrder(path: path, virtualSize: virtualSize)
        file = try FileWriter(path: path)
    }

    /// `parent` relative to the directory of `child`, in Windows form (`.\p.vhdx`, `..\d\p.vhdx`).
    static func windowsRelativePath(from child: String, to parent: String) -> String {
        let childDirectory = URL(fileURLWithPath: child).standardizedFileURL.deletingLastPathComponent().pathComponents
        let target = URL(fileURLWithPath: parent).standardizedFileURL.pathComponents
        var common = 0
        while common < childDirectory.count, common < target.count - 1, childDirectory[common] == target[common] { common += 1 }
        let ups = Array(repeating: "..", count: childDirectory.count - common)
        let parts = (ups.isEmpty ? ["."] : ups) + target[common...]
        return parts.joined(separator: "\\")
    }

    func write(at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        let sector = blockSize / sectorsPerBlock
        if sector > 512 && (offset % sector != 0 || UInt64(data.count) % sector != 0) {
            throw DiskError.invalid(file.path, "write of \(data.count) bytes at offset \(offset) is not aligned to the parent's \(sector)-byte sectors")
        }
        try order.accept(offset: offset, count: data.count)
        var done = 0
        while done < data.count {
            let position = offset + UInt64(done)
            let block = position / blockSize, inBlock = position % blockSize
            let length = Int(Swift.min(blockSize - inBlock, UInt64(data.count - done)))
            let piece = UnsafeRawBufferPointer(rebasing: data[done..<done + length])
            var runs: [(Int, Int)] = []
            ZeroScan.forEachNonZeroRun(piece) { runs.append(($0, $1)) }
            let index = Int(block + block / chunkRatio)
            if entries[index] == 0 && (!runs.isEmpty || isDifferencing) {
                entries[index] = nextFree | UInt64(VHDXBlockAllocationTable.PayloadState.fullyPresent.rawValue)
                nextFree += blockSize
            }
            let blockOffset = entries[index] & ~(VHDXWriter.mebibyte - 1)
            for (start, count) in runs {
                try file.write(UnsafeRawBufferPointer(rebasing: piece[start..<start + count]), at: blockOffset + inBlock + UInt64(start))
            }
            if isDifferencing {
                let sector = blockSize / sectorsPerBlock
                var bitmap = bitmaps[block] ?? SectorBitmap(sectors: Int(sectorsPerBlock))
                bitmap.set(from: Int(inBlock / sector), to: Int((inBlock + UInt64(length)) / sector))
                bitmaps[block] = bitmap
            }
            done += length
        }
    }

    func finish() throws {
        try order.finish()
        if isDifferencing { try writeSectorBitmaps() }
        try file.truncate(to: nextFree)
        var bat = [UInt8](repeating: 0, count: entries.count * 8)
        for (index, entry) in entries.enumerated() { bat.putLE64(entry, at: index * 8) }
        try file.write(bat, at: VHDXWriter.batOffset)
        try file.write(metadata.serialized(regionLength: Int(VHDXWriter.mebibyte)), at: VHDXWriter.metadataOffset)
        let regions = VHDXRegionTable(
            bat: .init(guid: VHDXRegionTable.batGuid, fileOffset: VHDXWriter.batOffset, length: UInt32(batLength), required: true),
            metadata: .init(guid: VHDXRegionTable.metadataGuid, fileOffset: VHDXWriter.metadataOffset,
                            length: UInt32(VHDXWriter.mebibyte), required: true))
        for offset in VHDXRegionTable.offsets { try file.write(regions.serialized(), at: offset) }
        try file.write(VHDXHeader.fileIdentifier(creator: "dpm"), at: 0)
        var header = VHDXHeader(sequenceNumber: 1, fileWriteGuid: .random(), dataWriteGuid: .random(), logGuid: .zero,
                                logVersion: 0, version: 1, logLength: UInt32(VHDXWriter.mebibyte), logOffset: VHDXWriter.mebibyte)
        for offset in VHDXHeader.offsets {
            try file.write(header.serialized(), at: offset)
            header.sequenceNumber += 1
        }
        try file.close()
    }

    /// Marks differencing blocks fully or partially present and appends the sector bitmap blocks.
    private func writeSectorBitmaps() throws {
        var chunks: [UInt64: [UInt8]] = [:]
        let partial = UInt64(VHDXBlockAllocationTable.PayloadState.partiallyPresent.rawValue)
        for (block, bitmap) in bitmaps.sorted(by: { $0.key < $1.key }) {
            let index = Int(block + block / chunkRatio)
            var full = true
            bitmap.forEachRun(from: 0, to: Int(sectorsPerBlock)) { _, _, set in if !set { full = false } }
            if full { continue }
            entries[index] = (entries[index] & ~7) | partial
            let chunk = block / chunkRatio
            var bytes = chunks[chunk] ?? [UInt8](repeating: 0, count: Int(VHDXWriter.mebibyte))
            bytes.put(bitmap.bytes, at: Int((block % chunkRatio) * sectorsPerBlock / 8))
            chunks[chunk] = bytes
        }
        for (chunk, bytes) in chunks.sorted(by: { $0.key < $1.key }) {
            try file.write(bytes, at: nextFree)
            entries[Int(chunk * (chunkRatio + 1) + chunkRatio)] = nextFree | VHDXBlockAllocationTable.sectorBitmapPresent
            nextFree += VHDXWriter.mebibyte
        }
    }
}
