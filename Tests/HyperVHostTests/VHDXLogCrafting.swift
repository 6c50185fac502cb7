import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Builds VHDX log entries (MS-VHDX 2.3) and installs them into an existing file, the way a
/// writer that crashed before applying its log would leave it.
enum VHDXLogCrafting {
    enum Descriptor {
        /// 4 KiB of new content at a 4 KiB-aligned file offset.
        case data(fileOffset: UInt64, bytes: [UInt8])
        /// `length` zero bytes at a 4 KiB-aligned file offset.
        case zero(fileOffset: UInt64, length: UInt64)
    }

    /// One complete log entry: header and descriptor sectors, then one data sector per data descriptor.
    static func entry(sequence: UInt64, tail: UInt32, logGuid: MSGUID, flushedFileOffset: UInt64,
                      lastFileOffset: UInt64, _ descriptors: [Descriptor]) -> [UInt8] {
        let descriptorSectors = (descriptors.count + 2 + 127) / 128
        let dataCount = descriptors.filter { if case .data = $0 { return true } else { return false } }.count
        var bytes = [UInt8](repeating: 0, count: (descriptorSectors + dataCount) * 4096)
        bytes.putASCII("loge", at: 0)
        bytes.putLE32(UInt32(bytes.count), at: 8)
        bytes.putLE32(tail, at: 12)
        bytes.putLE64(sequence, at: 16)
        bytes.putLE32(UInt32(descriptors.count), at: 24)
        bytes.put(logGuid.bytes, at: 32)
        bytes.putLE64(flushedFileOffset, at: 48)
        bytes.putLE64(lastFileOffset, at: 56)
        var dataSector = descriptorSectors
        for (index, descriptor) in descriptors.enumerated() {
            let at = 64 + 32 * index
            switch descriptor {
            case .zero(let offset, let length):
                bytes.putASCII("zero", at: at)
                bytes.putLE64(length, at: at + 8)
                bytes.putLE64(offset, at: at + 16)
            case .data(let offset, let content):
                precondition(content.count == 4096)
                bytes.putASCII("desc", at: at)
                bytes.put(Array(content[4092..<4096]), at: at + 4)
                bytes.put(Array(content[0..<8]), at: at + 8)
                bytes.putLE64(offset, at: at + 16)
                let sector = dataSector * 4096
                bytes.putASCII("data", at: sector)
                bytes.putLE32(UInt32(sequence >> 32), at: sector + 4)
                bytes.put(Array(content[8..<4092]), at: sector + 8)
                bytes.putLE32(UInt32(truncatingIfNeeded: sequence), at: sector + 4092)
                dataSector += 1
            }
            bytes.putLE64(sequence, at: at + 24)
        }
        CRC32C.seal(&bytes, fieldOffset: 4)
        return bytes
    }

    /// Writes `bytes` at `offset` of the file at `path`.
    static func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
    }

    /// Writes entries at sector positions of the log and makes both headers name `logGuid`
    /// (and, optionally, a different log length).
    static func install(into path: String, entries: [(sector: Int, bytes: [UInt8])], logGuid: MSGUID,
                        logLength: UInt32? = nil) throws {
        let file = try FileReader(path: path)
        var header = try VHDXHeader.readCurrent(from: file)
        for entry in entries {
            try patch(path, at: header.logOffset + UInt64(entry.sector * 4096), entry.bytes)
        }
        header.logGuid = logGuid
        header.sequenceNumber += 1
        if let logLength { header.logLength = logLength }
        for offset in VHDXHeader.offsets { try patch(path, at: offset, header.serialized()) }
    }

    /// A qemu-made 8 MiB dynamic VHDX with 1 MiB blocks: block 0 is 0xA1, block 1 is 0xB2,
    /// the rest never written. Returns its path, BAT offset and first BAT sector.
    static func makeBase(in directory: TemporaryDirectory, name: String = "logged.vhdx") throws -> (path: String, batOffset: UInt64, bat: [UInt8], block0: UInt64) {
        let path = directory.path(name)
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "vhdx", "-o", "block_size=1M", path, "8M"])
        try FormatTools.qemuIO(path, format: "vhdx", ["write -P 0xa1 0 1M", "write -P 0xb2 1M 1M"])
        let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? VHDXImage)
        let batOffset = image.regions.bat.fileOffset
        let bat = try FileReader(path: path).readBytes(at: batOffset, count: 4096)
        return (path, batOffset, bat, bat.le64(0) & ~0xFFFFF)
    }

    /// Appends a 1 MiB block filled with `byte` at the next 1 MiB boundary; returns its offset
    /// and the new file size.
    static func appendBlock(to path: String, byte: UInt8) throws -> (offset: UInt64, fileSize: UInt64) {
        let size = UInt64(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0)
        let offset = (size + 0xFFFFF) & ~0xFFFFF
        try patch(path, at: offset, [UInt8](repeating: byte, count: 1 << 20))
        return (offset, offset + (1 << 20))
    }
}
