import Foundation

/// Writes a dynamic (or, over a parent, differencing) VHD file in one pass.
///
/// File layout:
///
/// | offset | content |
/// |---|---|
/// | 0 | copy of the footer |
/// | 512 | dynamic disk header |
/// | 1536 | BAT, `ceil(size / blockSize)` big-endian entries, padded to 512 bytes |
/// | after the BAT | (differencing only) parent locator data: `W2ru`, then `W2ku`, each padded to 512 |
/// | then | blocks in the order they were first written: sector bitmap (512 bytes for 2 MiB blocks), then data |
/// | end | footer |
///
/// A block is allocated the first time a write puts non-zero data in it, and only the non-zero
/// 4 KiB pieces of each write are stored, so zeros stay holes. A dynamic disk's bitmaps are all
/// ones (every sector of an allocated block is the disk's data; unwritten ones are zeros). A
/// differencing child allocates a block for every write, zeros included, and sets exactly the
/// written sectors' bits. `finish` writes the bitmaps, BAT, header and both footers, then fsyncs.
///
/// Footer fields: creator application `win ` with version 0x000A0000 and host `Wi2k`, as Hyper-V
/// writes them. The creator matters to qemu, which picks between Current Size and the CHS
/// geometry's size (which rounds most sizes down) by creator: qemu 7.x uses Current Size only for
/// creators it knows (`win `, `qem2`, `d2v `, `CTXS`, `tap\0`), newer qemu for all but `vpc ` and
/// `qemu`. With `win ` every reader sees the exact size. The geometry is still the
/// specification's CHS calculation.
final class VHDWriter: DiskImageWriter {
    static let defaultBlockSize: UInt64 = 2 << 20
    /// Hyper-V's limit for VHD (2040 GiB); it also keeps every block offset within 32-bit sectors.
    static let maximumSize: UInt64 = 2040 << 30
    private static let unallocated: UInt32 = 0xFFFF_FFFF

    private let file: FileWriter
    private var order: WriteOrder
    private var footer: VHDFooter
    private var header: VHDDynamicHeader
    private let blockSize: UInt64
    private var entries: [UInt32]
    private var nextFree: UInt64
    private var bitmaps: [Int: SectorBitmap] = [:]
    private let isDifferencing: Bool
    private var locatorData: [(UInt64, [UInt8])] = []

    init(path: String, virtualSize: UInt64, blockSize: UInt64, parent: VHDImage? = nil) throws {
        try WriteOrder.checkSize(virtualSize, path: path, maximum: VHDWriter.maximumSize, format: .vhd)
        guard blockSize.isPowerOfTwo, blockSize >= 512 << 10, blockSize <= 2 << 20 else {
            throw DiskError.invalid(path, "VHD block size \(blockSize) must be 512 KiB, 1 MiB or 2 MiB")
        }
        self.blockSize = blockSize
        isDifferencing = parent != nil
        let blocks = Int(virtualSize.divideRoundingUp(blockSize))
        entries = [UInt32](repeating: VHDWriter.unallocated, count: blocks)
        let tableOffset: UInt64 = 1536
        nextFree = tableOffset + (UInt64(blocks) * 4 + 511) / 512 * 512
        let geometry = VHDFooter.geometry(forSize: virtualSize)
        footer = VHDFooter(dataOffset: 512, timestamp: VHDFooter.timestamp(), creatorApplication: "win ",
                           creatorVersion: 0x000A_0000, creatorHostOS: "Wi2k", originalSize: virtualSize,
                           currentSize: virtualSize, cylinders: geometry.cylinders, heads: geometry.heads,
                           sectorsPerTrack: geometry.sectorsPerTrack, diskType: parent == nil ? .dynamic : .differencing,
                           uniqueId: .random())
        header = VHDDynamicHeader(tableOffset: tableOffset, maxTableEntries: UInt32(blocks), blockSize: UInt32(blockSize))
        if let parent {
            let absolute = URL(fileURLWithPath: parent.path).standardizedFileURL.path
            header.parentUniqueId = parent.footer.uniqueId
            header.parentTimestamp = parent.footer.timestamp
            header.parentUnicodeName = URL(fileURLWithPath: absolute).lastPathComponent
            for (code, text) in [("W2ru", VHDXWriter.windowsRelativePath(from: path, to: absolute)), ("W2ku", absolute)] {
                let bytes = utf16LEBytes(text)
                let space = (UInt64(bytes.count) + 511) / 512 * 512
                header.locators.append(.init(platformCode: code, dataSpace: UInt32(space), dataLength: UInt32(bytes.count),
                                             dataOffset: nextFree))
                locatorData.append((nextFree, bytes))
                nextFree += space
            }
        }
        order = WriteOrder(path: path, virtualSize: virtualSize)
        file = try FileWriter(path: path)
    }

    private var bitmapSize: UInt64 { header.bitmapSize }

    func write(at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        try order.accept(offset: offset, count: data.count)
        var done = 0
        while done < data.count {
            let position = offset + UInt64(done)
            let block = Int(position / blockSize), inBlock = position % blockSize
            let length = Int(Swift.min(blockSize - inBlock, UInt64(data.count - done)))
            let piece = UnsafeRawBufferPointer(rebasing: data[done..<done + length])
            var runs: [(Int, Int)] = []
            ZeroScan.forEachNonZeroRun(piece) { runs.append(($0, $1)) }
            if entries[block] == VHDWriter.unallocated && (!runs.isEmpty || isDifferencing) {
                entries[block] = UInt32(nextFree / 512)
                nextFree += bitmapSize + blockSize
            }
            let dataOffset = UInt64(entries[block]) * 512 + bitmapSize
            for (start, count) in runs {
                try file.write(UnsafeRawBufferPointer(rebasing: piece[start..<start + count]), at: dataOffset + inBlock + UInt64(start))
            }
            if isDifferencing {
                var bitmap = bitmaps[block] ?? SectorBitmap(sectors: Int(blockSize / 512))
                bitmap.set(from: Int(inBlock / 512), to: Int((inBlock + UInt64(length)) / 512))
                bitmaps[block] = bitmap
            }
            done += length
        }
    }

    func finish() throws {
        try order.finish()
        let allOnes = [UInt8](repeating: 0xFF, count: Int(bitmapSize))
        for (block, entry) in entries.enumerated() where entry != VHDWriter.unallocated {
            var bitmap = allOnes
            if isDifferencing {
                bitmap = [UInt8](repeating: 0, count: Int(bitmapSize))
                if let written = bitmaps[block] { bitmap.put(written.msbFirstBytes, at: 0) }
            }
            try file.write(bitmap, at: UInt64(entry) * 512)
        }
        for (offset, bytes) in locatorData { try file.write(bytes, at: offset) }
        var bat = [UInt8](repeating: 0, count: entries.count * 4)
        for (index, entry) in entries.enumerated() { bat.putBE32(entry, at: index * 4) }
        try file.write(bat, at: header.tableOffset)
        try file.write(header.serialized(), at: 512)
        let footerBytes = footer.serialized()
        try file.truncate(to: nextFree + 512)
        try file.write(footerBytes, at: nextFree)
        try file.write(footerBytes, at: 0)
        try file.close()
    }
}
