import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// The VHDX, VHD and raw writers: written from a pattern source the way a restore writes
/// (ascending 4 MiB pieces, all-zero pieces sometimes skipped), the result must pass
/// `qemu-img check`, compare identical to the source with `qemu-img compare`, keep the exact
/// virtual size, and read back through dpm's own readers.
final class WriterTests: XCTestCase {
    /// 40 MiB plus 3 sectors: not a multiple of any block size.
    static let size = (40 << 20) + 3 * 512

    /// Random data, a zero gap, patterns crossing block boundaries, an odd-sized run, and data
    /// in the final partial block.
    static func source() -> [UInt8] {
        var random = SeededGenerator(seed: 42)
        var bytes = [UInt8](repeating: 0, count: size)
        func put(_ offset: Int, _ data: [UInt8]) { bytes.replaceSubrange(offset..<offset + data.count, with: data) }
        put(0, random.bytes(1 << 20))
        put((5 << 20) + 512, [UInt8](repeating: 0xA5, count: (2 << 20) - 512))
        put(20 << 20, random.bytes(33 * 512))
        put((31 << 20) + 4096, random.bytes(3 << 20))
        put(size - (1 << 20), random.bytes(1 << 20))
        return bytes
    }

    /// Writes `content` through `writer` in ascending 4 MiB pieces; all-zero pieces with an even
    /// index are skipped (left unwritten), odd ones are written as zeros.
    static func stream(_ content: [UInt8], into writer: DiskImageWriter) throws {
        let piece = 4 << 20
        var offset = 0, index = 0
        while offset < content.count {
            let count = min(piece, content.count - offset)
            try content.withUnsafeBytes { buffer in
                let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
                if !(ZeroScan.isAllZero(slice) && index % 2 == 0) { try writer.write(at: UInt64(offset), slice) }
            }
            offset += count
            index += 1
        }
        try writer.finish()
    }

    /// Created per test and released in tearDown (XCTest keeps test-case instances alive, so
    /// an instance property alone would never be cleaned up).
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory("writer")
    }

    override func tearDown() {
        directory = nil
    }

    private func writeAndVerify(format: DiskFormat, qemuFormat: String, blockSize: UInt64? = nil,
                                file: StaticString = #filePath, line: UInt = #line) throws -> DiskImage {
        let content = Self.source()
        let sourcePath = directory.path("source.raw")
        try Data(content).write(to: URL(fileURLWithPath: sourcePath))
        let path = directory.path("restored.\(qemuFormat)")
        let writer = try DiskImageWriters.create(path: path, format: format, virtualSize: UInt64(Self.size), blockSize: blockSize)
        try Self.stream(content, into: writer)

        let check = try FormatTools.run("qemu-img", ["check", "-f", qemuFormat, path], allowFailure: true)
        if format == .vhd || format == .raw {
            // qemu's vpc and raw drivers implement no check; 63 is qemu-img's "format does not support checks".
            XCTAssertTrue(check.status == 0 || (check.status == 63 && check.output.contains("does not support checks")), check.output, file: file, line: line)
        } else {
            XCTAssertEqual(check.status, 0, check.output, file: file, line: line)
        }
        let compare = try FormatTools.run("qemu-img", ["compare", "-f", qemuFormat, "-F", "raw", path, sourcePath], allowFailure: true)
        XCTAssertEqual(compare.status, 0, compare.output, file: file, line: line)
        XCTAssertTrue(compare.output.contains("Images are identical"), compare.output, file: file, line: line)
        let info = try FormatTools.run("qemu-img", ["info", "-f", qemuFormat, path]).output
        XCTAssertTrue(info.contains("(\(Self.size) bytes)"), "qemu-img must report the exact size: \(info)", file: file, line: line)
        if format != .raw, FormatTools.find("vhdiinfo") != nil {
            let libvhdi = try FormatTools.run("vhdiinfo", [path])
            XCTAssertTrue(libvhdi.output.contains("Media size") || libvhdi.output.contains("media size"), libvhdi.output, file: file, line: line)
        }

        let image = try DiskImageOpener.open(path: path)
        XCTAssertEqual(image.format, format, file: file, line: line)
        let dataBytes = try ImageChecks.checkAgainstReference(image, reference: content, file: file, line: line)
        XCTAssertLessThan(dataBytes, UInt64(Self.size) / 2, "zero regions must stay unallocated", file: file, line: line)
        return image
    }

    func testVHDXWriterDefaultBlockSize() throws {
        let image = try writeAndVerify(format: .vhdx, qemuFormat: "vhdx")
        XCTAssertEqual(image.blockSize, 32 << 20)
    }

    func testVHDXWriterOneMebibyteBlocks() throws {
        let image = try writeAndVerify(format: .vhdx, qemuFormat: "vhdx", blockSize: 1 << 20)
        let vhdx = try XCTUnwrap(image as? VHDXImage)
        XCTAssertEqual(vhdx.payloadState(ofBlock: 0), .fullyPresent)
        XCTAssertEqual(vhdx.payloadState(ofBlock: 2), .notPresent, "an all-zero block is never allocated")
        XCTAssertEqual(vhdx.payloadState(ofBlock: 12), .notPresent, "a never-written block stays unallocated")
    }

    func testVHDWriter() throws {
        let image = try writeAndVerify(format: .vhd, qemuFormat: "vpc")
        let vhd = try XCTUnwrap(image as? VHDImage)
        XCTAssertEqual(vhd.footer.diskType, .dynamic)
        XCTAssertEqual(vhd.footer.currentSize, UInt64(Self.size))
        XCTAssertEqual(image.blockSize, 2 << 20)
    }

    func testRawWriterIsSparse() throws {
        let image = try writeAndVerify(format: .raw, qemuFormat: "raw")
        var info = stat()
        XCTAssertEqual(stat(image.path, &info), 0)
        XCTAssertLessThan(Int(info.st_blocks) * 512, Self.size / 2, "zeros must stay holes")
    }

    func testWriterRefusesBadRequests() throws {
        let directory = try TemporaryDirectory("writer")
        let path = directory.path("a.vhdx")
        let writer = try DiskImageWriters.create(path: path, format: .vhdx, virtualSize: 8 << 20, blockSize: 1 << 20)
        let sector = [UInt8](repeating: 1, count: 512)
        try sector.withUnsafeBytes { buffer in
            ImageChecks.expectError(.invalid, ["not aligned"]) { try writer.write(at: 100, buffer) }
            try writer.write(at: 4096, buffer)
            ImageChecks.expectError(.invalid, ["ascending order"]) { try writer.write(at: 0, buffer) }
            ImageChecks.expectError(.invalid, ["past the end"]) { try writer.write(at: 8 << 20, buffer) }
        }
        try writer.finish()
        sector.withUnsafeBytes { buffer in
            ImageChecks.expectError(.invalid, ["after finish"]) { try writer.write(at: 1 << 20, buffer) }
        }
        ImageChecks.expectError(.invalid, ["already exists"]) {
            try DiskImageWriters.create(path: path, format: .vhd, virtualSize: 8 << 20)
        }
        ImageChecks.expectError(.unsupported, ["qcow2"]) {
            try DiskImageWriters.create(path: directory.path("b.qcow2"), format: .qcow2, virtualSize: 8 << 20)
        }
        ImageChecks.expectError(.invalid, ["block size"]) {
            try DiskImageWriters.create(path: directory.path("c.vhdx"), format: .vhdx, virtualSize: 8 << 20, blockSize: 3 << 20)
        }
        ImageChecks.expectError(.invalid, ["multiple of 512"]) {
            try DiskImageWriters.create(path: directory.path("d.vhd"), format: .vhd, virtualSize: 1000)
        }
        let read = try ImageChecks.read(try DiskImageOpener.open(path: path), at: 4096, count: 512)
        XCTAssertEqual(read, sector)
    }

    func testCHSGeometryFollowsTheSpecification() {
        // The VHD specification's algorithm, which floors: qemu-img without force_size instead
        // searches for a geometry covering the whole size (100 MiB: 1004/12/17, 127 GiB: 65279/16/255).
        func geometry(_ size: UInt64) -> [Int] {
            let value = VHDFooter.geometry(forSize: size)
            return [Int(value.cylinders), Int(value.heads), Int(value.sectorsPerTrack)]
        }
        XCTAssertEqual(geometry(10 << 20), [301, 4, 17])
        XCTAssertEqual(geometry(100 << 20), [1003, 12, 17])
        XCTAssertEqual(geometry(1 << 30), [2080, 16, 63])
        XCTAssertEqual(geometry(127 << 30), [65278, 16, 255])
        XCTAssertEqual(geometry(3 << 40), [65535, 16, 255], "capped at the maximum geometry")
    }

    func testCRC32CCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        var streamed = CRC32C()
        let data = SeededGenerator(seed: 3).bytesCopy(10_000)
        streamed.update(data, range: 0..<3333)
        streamed.update(data, range: 3333..<10_000)
        XCTAssertEqual(streamed.value, CRC32C.checksum(data))
    }
}

extension SeededGenerator {
    /// `bytes(count)` on a copy, for use in expressions.
    func bytesCopy(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
