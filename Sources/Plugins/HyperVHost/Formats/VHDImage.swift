import Foundation
import PluginAPI

/// A VHD file (Virtual PC / Hyper-V's first format; qemu's `vpc`): fixed, dynamic or
/// differencing, read-only.
///
/// Opening finds the footer (`VHDFooter`): the copy at the end of the file, or, when that one is
/// damaged, the copy at offset 0 that dynamic and differencing disks keep. A fixed disk's data
/// is the start of the file. Dynamic and differencing disks read the dynamic header
/// (`VHDDynamicHeader`) and the BAT; a differencing disk opens its parent through the parent
/// locators and checks the parent's Unique Id.
///
/// Reads: allocated blocks of a dynamic disk come from the file (the sector bitmap is not
/// consulted, as qemu does: every sector of an allocated block is the disk's data); in a
/// differencing disk the bitmap decides sector run by sector run between this file (bit set)
/// and the parent (bit clear). Unallocated blocks are zeros, or the parent's data.
final class VHDImage: DiskImage {
    let path: String
    let format = DiskFormat.vhd
    let virtualSize: UInt64
    let footer: VHDFooter
    let dynamicHeader: VHDDynamicHeader?
    let parent: DiskImage?

    private let file: FileReader
    private let bat: [UInt32]
    private var bitmapCache: [Int: SectorBitmap] = [:]
    /// At most 32 MiB of cached bitmaps (512 bytes each for 2 MiB blocks).
    private var bitmapCacheLimit: Int { Swift.max(16, (32 << 20) / Swift.max(512, Int(dynamicHeader?.bitmapSize ?? 512))) }
    private static let unallocated: UInt32 = 0xFFFF_FFFF

    var blockSize: UInt64 { dynamicHeader.map { UInt64($0.blockSize) } ?? 2 << 20 }
    var isDifferencing: Bool { footer.diskType == .differencing }

    init(file: FileReader, context: OpenContext) throws {
        self.file = file
        path = file.path
        footer = try VHDImage.readFooter(file)
        virtualSize = footer.virtualSize
        guard virtualSize % 512 == 0, virtualSize <= DiskLimits.maxVirtualSize else {
            throw DiskError.corrupt(path, "virtual size \(virtualSize) is not a multiple of 512 bytes below 2^56")
        }
        if footer.diskType == .fixed {
            guard virtualSize <= file.physicalSize - UInt64(VHDFooter.size) else {
                throw DiskError.corrupt(path, "fixed disk of \(virtualSize) bytes needs a file of \(virtualSize + 512) bytes, but the file is \(file.physicalSize)")
            }
            dynamicHeader = nil
            bat = []
            parent = nil
            return
        }
        guard let headerEnd = footer.dataOffset.plus(UInt64(VHDDynamicHeader.size)), headerEnd <= file.physicalSize else {
            throw DiskError.corrupt(path, "dynamic disk header offset \(footer.dataOffset) is past the end of the file (size \(file.physicalSize))")
        }
        let header = try VHDDynamicHeader.parse(try file.readBytes(at: footer.dataOffset, count: VHDDynamicHeader.size), path: path)
        dynamicHeader = header
        let blockSize = UInt64(header.blockSize)
        guard blockSize.isPowerOfTwo, blockSize >= 512, blockSize <= 1 << 30 else {
            throw DiskError.corrupt(path, "block size \(blockSize) is not a power of two between 512 bytes and 1 GiB")
        }
        let blocks = virtualSize.divideRoundingUp(blockSize)
        guard UInt64(header.maxTableEntries) >= blocks else {
            throw DiskError.corrupt(path, "BAT has \(header.maxTableEntries) entries but a \(virtualSize)-byte disk needs \(blocks)")
        }
        guard let tableEnd = header.tableOffset.plus(blocks * 4), tableEnd <= file.physicalSize else {
            throw DiskError.corrupt(path, "BAT (offset \(header.tableOffset), \(blocks) entries) extends past the end of the file (size \(file.physicalSize))")
        }
        guard blocks * 4 <= DiskLimits.maxMetadataBytes else {
            throw DiskError.unsupported(path, "BAT of \(blocks) entries is larger than dpm loads")
        }
        var entries = [UInt32](repeating: 0, count: Int(blocks))
        try entries.withUnsafeMutableBytes { try file.read(at: header.tableOffset, into: $0) }
        for index in entries.indices { entries[index] = UInt32(bigEndian: entries[index]) }
        let needed = header.bitmapSize
        for (index, entry) in entries.enumerated() where entry != VHDImage.unallocated {
            let dataLength = Swift.min(blockSize, virtualSize - UInt64(index) * blockSize)
            let end = UInt64(entry) * 512 + needed + dataLength
            guard end <= file.physicalSize else {
                throw DiskError.corrupt(path, "BAT entry \(index) points past the end of the file (offset \(UInt64(entry) * 512), file size \(file.physicalSize))")
            }
        }
        bat = entries
        if footer.diskType == .differencing {
            parent = try VHDImage.openParent(path: path, header: header, file: file, context: context)
        } else {
            parent = nil
        }
    }

    private static func readFooter(_ file: FileReader) throws -> VHDFooter {
        let path = file.path
        guard file.physicalSize >= UInt64(VHDFooter.size) else {
            throw DiskError.corrupt(path, "file is \(file.physicalSize) bytes, too short for a VHD footer")
        }
        let end = VHDFooter.parse(try file.readBytes(at: file.physicalSize - 512, count: 512))
        if case .success(let footer) = end { return footer }
        let copy = VHDFooter.parse(try file.readBytes(at: 0, count: 512))
        if case .success(let footer) = copy, footer.diskType != .fixed { return footer }
        var endReason = "", copyReason = ""
        if case .failure(let rejection) = end { endReason = rejection.text }
        if case .failure(let rejection) = copy { copyReason = rejection.text } else { copyReason = "a fixed-disk footer cannot be a copy" }
        if endReason == "bad cookie" && copyReason == "bad cookie" {
            throw DiskError.corrupt(path, "bad signature: no \"conectix\" footer at the end of the file or at offset 0")
        }
        throw DiskError.corrupt(path, "footer is damaged (at the end: \(endReason); copy at offset 0: \(copyReason))")
    }

    private static func openParent(path: String, header: VHDDynamicHeader, file: FileReader, context: OpenContext) throws -> DiskImage {
        var (relative, absolute) = try header.parentPaths(from: file)
        if !header.parentUnicodeName.isEmpty { relative.append(header.parentUnicodeName) }
        var described: [String] = []
        if let first = relative.first { described.append("relative path \(first)") }
        if let first = absolute.first { described.append("absolute \(first)") }
        if described.isEmpty { described.append("no parent locator holds a path") }
        let image = try DiskImageOpener.openParent(childPath: path, childFormat: .vhd, relative: relative, absolute: absolute,
                                                   description: described.joined(separator: ", "), context: context)
        if let parent = image as? VHDImage, parent.footer.uniqueId != header.parentUniqueId {
            throw DiskError.corrupt(path, "parent \(parent.path) does not match: its unique id is \(parent.footer.uniqueId) but this differencing disk was made against \(header.parentUniqueId)")
        }
        return image
    }

    /// The file offset of block `index`'s sector bitmap, or nil when the block is not allocated.
    private func blockOffset(_ index: Int) -> UInt64? {
        let entry = bat[index]
        return entry == VHDImage.unallocated ? nil : UInt64(entry) * 512
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkReadRange(self, offset: offset, count: buffer.count)
        var plan = ReadPlan(file: file, parent: parent, buffer: buffer, start: offset)
        guard let header = dynamicHeader else {
            try plan.add(.file(offset), length: buffer.count)
            return try plan.finish()
        }
        let blockSize = UInt64(header.blockSize), end = offset + UInt64(buffer.count)
        var position = offset
        while position < end {
            let block = Int(position / blockSize), inBlock = position % blockSize
            let length = Swift.min(blockSize - inBlock, end - position)
            if let base = blockOffset(block) {
                let data = base + header.bitmapSize
                if isDifferencing {
                    let bitmap = try sectorBitmap(block, at: base, size: header.bitmapSize)
                    let stop = inBlock + length
                    try bitmap.forEachRun(from: Int(inBlock / 512), to: Int((stop + 511) / 512)) { first, last, present in
                        let runStart = Swift.max(UInt64(first) * 512, inBlock), runEnd = Swift.min(UInt64(last) * 512, stop)
                        try plan.add(present ? .file(data + runStart) : .parent, length: Int(runEnd - runStart))
                    }
                } else {
                    try plan.add(.file(data + inBlock), length: Int(length))
                }
            } else {
                try plan.add(isDifferencing ? .parent : .zero, length: Int(length))
            }
            position += length
        }
        try plan.finish()
    }

    func allocationMap() throws -> [Extent] {
        var map = LayerMap()
        guard let header = dynamicHeader else {
            map.appendAllocated(offset: 0, length: virtualSize, fileOffset: 0, file: file)
            return try map.resolve(parent: nil, path: path)
        }
        let blockSize = UInt64(header.blockSize)
        for block in 0..<bat.count {
            let start = UInt64(block) * blockSize, length = Swift.min(blockSize, virtualSize - start)
            guard let base = blockOffset(block) else {
                map.append(offset: start, length: length, isDifferencing ? .parent : .zero)
                continue
            }
            if isDifferencing {
                let bitmap = try sectorBitmap(block, at: base, size: header.bitmapSize)
                bitmap.forEachRun(from: 0, to: Int(length.divideRoundingUp(512))) { first, last, present in
                    let runStart = UInt64(first) * 512, runEnd = Swift.min(UInt64(last) * 512, length)
                    map.append(offset: start + runStart, length: runEnd - runStart, present ? .data : .parent)
                }
            } else {
                map.appendAllocated(offset: start, length: length, fileOffset: base + header.bitmapSize, file: file)
            }
        }
        return try map.resolve(parent: parent, path: path)
    }

    private func sectorBitmap(_ block: Int, at offset: UInt64, size: UInt64) throws -> SectorBitmap {
        if let cached = bitmapCache[block] { return cached }
        let bitmap = SectorBitmap(msbFirst: try file.readBytes(at: offset, count: Int(size)))
        if bitmapCache.count >= bitmapCacheLimit { bitmapCache.removeAll(keepingCapacity: true) }
        bitmapCache[block] = bitmap
        return bitmap
    }
}
