import Foundation
import PluginAPI

/// A VHDX file (Hyper-V's format, MS-VHDX): fixed, dynamic or differencing, read-only.
///
/// Opening reads, in order: the file type identifier and current header (`VHDXHeader`); the
/// log, replayed in memory if LogGuid is non-zero (`VHDXLog`); the region table
/// (`VHDXRegionTable`); the metadata (`VHDXMetadata`); the BAT (`VHDXBlockAllocationTable`),
/// every used entry checked against the file size; and for a differencing disk its parent,
/// located through the parent locator and checked against `parent_linkage`.
///
/// Reads go block by block through the BAT: FULLY_PRESENT blocks come from the file (adjacent
/// blocks stored contiguously become one `pread`), ZERO blocks are zeros, NOT_PRESENT /
/// UNDEFINED / UNMAPPED blocks are zeros or, in a differencing disk, the parent's data, and
/// PARTIALLY_PRESENT blocks follow the sector bitmap run by run.
final class VHDXImage: DiskImage {
    let path: String
    let format = DiskFormat.vhdx
    let virtualSize: UInt64
    let header: VHDXHeader
    let regions: VHDXRegionTable
    let metadata: VHDXMetadata
    let bat: VHDXBlockAllocationTable
    let parent: DiskImage?
    /// The number of log entries replayed in memory when the file was opened.
    let replayedLogEntries: Int

    private let file: FileReader
    private let sectorsPerBlock: UInt64
    /// Sector bitmaps of partially present blocks, by block number.
    private var bitmapCache: [UInt64: SectorBitmap] = [:]
    /// At most 32 MiB of cached bitmaps (a block's bitmap is 32 bytes to 64 KiB).
    private var bitmapCacheLimit: Int { Swift.max(16, (32 << 20) / Swift.max(1, Int(sectorsPerBlock / 8))) }

    var blockSize: UInt64 { UInt64(metadata.blockSize) }
    var logicalSectorSize: UInt64 { UInt64(metadata.logicalSectorSize) }
    var isFixed: Bool { metadata.leaveBlocksAllocated }

    init(file: FileReader, context: OpenContext) throws {
        self.file = file
        path = file.path
        header = try VHDXHeader.readCurrent(from: file)
        replayedLogEntries = try VHDXLog.replay(file: file, header: header)
        regions = try VHDXRegionTable.read(from: file)
        metadata = try VHDXMetadata.read(from: file, region: regions.metadata)
        virtualSize = metadata.virtualDiskSize
        sectorsPerBlock = UInt64(metadata.blockSize / metadata.logicalSectorSize)
        bat = try VHDXBlockAllocationTable.read(from: file, region: regions.bat, metadata: metadata)
        if let locator = metadata.parentLocator {
            parent = try VHDXImage.openParent(path: file.path, locator: locator, context: context)
        } else {
            parent = nil
        }
    }

    /// The state of payload block `block`, for inspection and tests.
    func payloadState(ofBlock block: UInt64) -> VHDXBlockAllocationTable.PayloadState? {
        block < bat.payloadBlockCount ? bat.payload(block).state : nil
    }

    private static func openParent(path: String, locator: VHDXParentLocator, context: OpenContext) throws -> DiskImage {
        guard locator.locatorType == VHDXParentLocator.vhdxLocatorType else {
            throw DiskError.unsupported(path, "parent locator type \(locator.locatorType) is not the VHDX locator type; dpm follows VHDX parents only")
        }
        let relative = locator.value("relative_path")
        let absolute = [locator.value("absolute_win32_path"), locator.value("volume_path")].compactMap { $0 }
        var described: [String] = []
        if let relative { described.append("relative path \(relative)") }
        if let first = absolute.first { described.append("absolute \(first)") }
        if described.isEmpty { described.append("the parent locator holds no path") }
        let image = try DiskImageOpener.openParent(
            childPath: path, childFormat: .vhdx, relative: relative.map { [$0] } ?? [], absolute: absolute,
            description: described.joined(separator: ", "), context: context)
        guard let parent = image as? VHDXImage else { return image }
        let linkages = [locator.value("parent_linkage"), locator.value("parent_linkage2")].compactMap { $0 }
        guard let expected = linkages.first.flatMap({ MSGUID($0) }) else {
            throw DiskError.corrupt(path, "parent locator has no valid parent_linkage")
        }
        let accepted = linkages.compactMap { MSGUID($0) }
        guard accepted.contains(parent.header.dataWriteGuid) else {
            throw DiskError.corrupt(path, "parent \(parent.path) does not match: its DataWriteGuid is \(parent.header.dataWriteGuid.braced) but this differencing disk was made against \(expected.braced); the parent was modified after the child was created")
        }
        return parent
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkReadRange(self, offset: offset, count: buffer.count)
        var plan = ReadPlan(file: file, parent: parent, buffer: buffer, start: offset)
        let end = offset + UInt64(buffer.count)
        var position = offset
        while position < end {
            let block = position / blockSize, inBlock = position % blockSize
            let length = Swift.min(blockSize - inBlock, end - position)
            let entry = bat.payload(block)
            switch entry.state {
            case .fullyPresent:
                try plan.add(.file(entry.fileOffset + inBlock), length: Int(length))
            case .zero:
                try plan.add(.zero, length: Int(length))
            case .notPresent, .undefined, .unmapped, .unmappedDraft:
                try plan.add(metadata.hasParent ? .parent : .zero, length: Int(length))
            case .partiallyPresent:
                let bitmap = try sectorBitmap(ofBlock: block)
                let sector = logicalSectorSize
                let stop = inBlock + length
                try bitmap.forEachRun(from: Int(inBlock / sector), to: Int((stop + sector - 1) / sector)) { first, last, present in
                    let runStart = Swift.max(UInt64(first) * sector, inBlock)
                    let runEnd = Swift.min(UInt64(last) * sector, stop)
                    try plan.add(present ? .file(entry.fileOffset + runStart) : .parent, length: Int(runEnd - runStart))
                }
            }
            position += length
        }
        try plan.finish()
    }

    func allocationMap() throws -> [Extent] {
        var map = LayerMap()
        // Fully present blocks stored back to back (every block of a fixed disk) are handed to
        // the file system's hole search as one range.
        var pending: (start: UInt64, fileOffset: UInt64, length: UInt64)?
        func flush() {
            if let run = pending { map.appendAllocated(offset: run.start, length: run.length, fileOffset: run.fileOffset, file: file) }
            pending = nil
        }
        for block in 0..<bat.payloadBlockCount {
            if map.isFull { break }
            let start = block * blockSize
            let length = Swift.min(blockSize, virtualSize - start)
            let entry = bat.payload(block)
            if entry.state == .fullyPresent {
                if let run = pending, run.start + run.length == start, run.fileOffset + run.length == entry.fileOffset {
                    pending = (run.start, run.fileOffset, run.length + length)
                } else {
                    flush()
                    pending = (start, entry.fileOffset, length)
                }
                continue
            }
            flush()
            switch entry.state {
            case .fullyPresent:
                break
            case .zero:
                map.append(offset: start, length: length, .zero)
            case .notPresent, .undefined, .unmapped, .unmappedDraft:
                map.append(offset: start, length: length, metadata.hasParent ? .parent : .zero)
            case .partiallyPresent:
                let bitmap = try sectorBitmap(ofBlock: block)
                let sector = logicalSectorSize
                bitmap.forEachRun(from: 0, to: Int(length.divideRoundingUp(sector))) { first, last, present in
                    let runStart = UInt64(first) * sector
                    let runEnd = Swift.min(UInt64(last) * sector, length)
                    map.append(offset: start + runStart, length: runEnd - runStart, present ? .data : .parent)
                }
            }
        }
        flush()
        return try map.resolve(parent: parent, path: path)
    }

    /// The sector bitmap of a partially present block (validated at open to exist in the file).
    private func sectorBitmap(ofBlock block: UInt64) throws -> SectorBitmap {
        if let cached = bitmapCache[block] { return cached }
        let chunk = block / bat.chunkRatio
        guard let base = bat.sectorBitmapOffset(chunk: chunk) else {
            throw DiskError.corrupt(path, "block \(block) is partially present but has no sector bitmap")
        }
        let bytesPerBlock = sectorsPerBlock / 8
        let offset = base + (block % bat.chunkRatio) * bytesPerBlock
        let bitmap = SectorBitmap(lsbFirst: try file.readBytes(at: offset, count: Int(bytesPerBlock)))
        if bitmapCache.count >= bitmapCacheLimit { bitmapCache.removeAll(keepingCapacity: true) }
        bitmapCache[block] = bitmap
        return bitmap
    }
}
