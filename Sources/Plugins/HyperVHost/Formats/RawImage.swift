import Foundation
import PluginAPI

/// A raw disk image: the file's bytes are the disk's bytes, and its length is the disk's size.
///
/// The allocation map comes from the file system: `SEEK_DATA`/`SEEK_HOLE` find the holes of a
/// sparse file, which read as zeros and are reported as `.zero`; everything else is `.data`
/// (a file system that cannot answer makes the whole disk `.data`). Block devices work too:
/// their size comes from seeking to the end, and they are reported as all data.
final class RawImage: DiskImage {
    let path: String
    let format = DiskFormat.raw
    let virtualSize: UInt64
    /// Raw files have no allocation unit of their own; 1 MiB is the preferred granularity.
    let blockSize: UInt64 = 1 << 20

    private let file: FileReader

    init(file: FileReader) {
        self.file = file
        path = file.path
        virtualSize = file.physicalSize
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkReadRange(self, offset: offset, count: buffer.count)
        try file.read(at: offset, into: buffer)
    }

    func allocationMap() throws -> [Extent] {
        var map = LayerMap()
        map.appendAllocated(offset: 0, length: virtualSize, fileOffset: 0, file: file)
        return try map.resolve(parent: nil, path: path)
    }
}

/// Writes a sparse raw image: the file is created at the full virtual size as one hole
/// (`ftruncate`), and only the non-zero 4 KiB pieces of each write are stored (`pwrite`), so
/// never-written and all-zero regions stay holes.
final class RawImageWriter: DiskImageWriter {
    private let file: FileWriter
    private var order: WriteOrder

    init(path: String, virtualSize: UInt64) throws {
        try WriteOrder.checkSize(virtualSize, path: path, maximum: DiskLimits.maxVirtualSize, format: .raw)
        file = try FileWriter(path: path)
        order = WriteOrder(path: path, virtualSize: virtualSize)
        try file.truncate(to: virtualSize)
    }

    func write(at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        try order.accept(offset: offset, count: data.count)
        try ZeroScan.forEachNonZeroRun(data) { start, length in
            try file.write(UnsafeRawBufferPointer(rebasing: data[start..<start + length]), at: offset + UInt64(start))
        }
    }

    func finish() throws {
        try order.finish()
        try file.close()
    }
}
