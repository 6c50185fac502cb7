import Foundation
import PluginAPI

/// Writes a new image sequentially. Regions must be written in ascending order, each offset and length a
/// multiple of 512; regions never written read as zeros and are left unallocated.
protocol DiskImageWriter: AnyObject {
    func write(at offset: UInt64, _ data: UnsafeRawBufferPointer) throws
    /// Writes the metadata (BAT, headers, footer), fsyncs and closes. After this the file passes `qemu-img check`.
    func finish() throws
}

enum DiskImageWriters {
    /// format .vhdx: dynamic VHDX (block size default 32 MiB, or `blockSize`), .vhd: dynamic VHD (2 MiB blocks),
    /// .raw: sparse raw file. qcow2 writing is not needed (throw .unsupported).
    static func create(path: String, format: DiskFormat, virtualSize: UInt64, blockSize: UInt64? = nil) throws -> DiskImageWriter {
        switch format {
        case .vhdx: return try VHDXWriter(path: path, virtualSize: virtualSize, blockSize: blockSize ?? VHDXWriter.defaultBlockSize)
        case .vhd: return try VHDWriter(path: path, virtualSize: virtualSize, blockSize: blockSize ?? VHDWriter.defaultBlockSize)
        case .raw: return try RawImageWriter(path: path, virtualSize: virtualSize)
        case .qcow2: throw DiskError.unsupported(path, "dpm does not write qcow2 images; write raw, VHD or VHDX")
        }
    }

    /// Creates a differencing disk over `parentPath` (VHDX over a VHDX parent, VHD over a VHD
    /// parent) with the parent's virtual size. Written regions replace the parent's sectors,
    /// zeros included; regions never written read through to the parent.
    static func createDifferencing(path: String, format: DiskFormat, parentPath: String, blockSize: UInt64? = nil) throws -> DiskImageWriter {
        let parent = try DiskImageOpener.open(path: parentPath)
        switch (format, parent) {
        case (.vhdx, let parent as VHDXImage):
            return try VHDXWriter(path: path, virtualSize: parent.virtualSize, blockSize: blockSize ?? VHDXWriter.defaultBlockSize,
                                  parent: parent)
        case (.vhd, let parent as VHDImage):
            return try VHDWriter(path: path, virtualSize: parent.virtualSize, blockSize: blockSize ?? VHDWriter.defaultBlockSize,
                                 parent: parent)
        default:
            throw DiskError.unsupported(path, "a \(format.displayName) differencing disk needs a parent of the same format; \(parentPath) is \(parent.format.displayName)")
        }
    }
}

/// The ordering and alignment rules every writer enforces.
struct WriteOrder {
    let path: String
    let virtualSize: UInt64
    private(set) var nextAllowed: UInt64 = 0
    private(set) var finished = false

    init(path: String, virtualSize: UInt64) {
        self.path = path
        self.virtualSize = virtualSize
    }

    /// Checks a write of `count` bytes at `offset` and records it.
    mutating func accept(offset: UInt64, count: Int) throws {
        guard !finished else { throw DiskError.invalid(path, "write after finish()") }
        guard offset % 512 == 0, count % 512 == 0 else {
            throw DiskError.invalid(path, "write of \(count) bytes at offset \(offset) is not aligned to 512 bytes")
        }
        guard offset >= nextAllowed else {
            throw DiskError.invalid(path, "write at offset \(offset) goes backwards (the previous write ended at \(nextAllowed)); regions must be written in ascending order")
        }
        guard let end = offset.plus(UInt64(count)), end <= virtualSize else {
            throw DiskError.invalid(path, "write of \(count) bytes at offset \(offset) is past the end of the \(virtualSize)-byte disk")
        }
        nextAllowed = end
    }

    /// Marks the writer finished; a second call fails.
    mutating func finish() throws {
        guard !finished else { throw DiskError.invalid(path, "finish() called twice") }
        finished = true
    }

    /// Checks a virtual size for a writer: positive, a multiple of 512, at most `maximum`.
    static func checkSize(_ size: UInt64, path: String, maximum: UInt64, format: DiskFormat) throws {
        guard size > 0, size % 512 == 0, size <= maximum else {
            throw DiskError.invalid(path, "virtual size \(size) must be a positive multiple of 512 bytes, at most \(maximum.byteDescription) for \(format.displayName)")
        }
    }
}
