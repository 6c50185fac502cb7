import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Images made by qemu-img and written with qemu-io: dpm's logical content must equal
/// `qemu-img convert -O raw` byte for byte, and its allocation map must agree with that content.
final class QemuMadeImageTests: XCTestCase {
    static let size: UInt64 = 64 << 20

    /// Patterns at several offsets: block starts, a region spanning blocks, a single unaligned
    /// sector, a region later overwritten with zeros (`write -z`), and the last megabyte.
    static let writes = [
        "write -P 0xa1 0 64k",
        "write -P 0xb2 1M 3M",
        "write -P 0xc3 9437696 512",
        "write -P 0xd4 20M 2M",
        "write -z 20M 1M",
        "write -P 0xe5 33M 5M",
        "write -z 34M 4M",
        "write -P 0xf6 63M 1M",
    ]

    private func check(format: String, options: [String] = [], expected: DiskFormat, expectSparse: Bool = true,
                       file: StaticString = #filePath, line: UInt = #line) throws -> DiskImage {
        let directory = try TemporaryDirectory("qemu")
        let path = directory.path("disk.\(format)")
        try FormatTools.run("qemu-img", ["create", "-q", "-f", format] + options + [path, "\(Self.size)"])
        try FormatTools.qemuIO(path, format: format, Self.writes)
        let reference = try FormatTools.referenceContent(of: path, format: format, in: directory)
        let image = try DiskImageOpener.open(path: path)
        XCTAssertEqual(image.format, expected, file: file, line: line)
        let dataBytes = try ImageChecks.checkAgainstReference(image, reference: reference, file: file, line: line)
        if expectSparse {
            XCTAssertLessThan(dataBytes, Self.size / 2, "the map should leave unwritten regions .zero", file: file, line: line)
        }
        return image
    }

    func testVHDXWithOneMebibyteBlocks() throws {
        let image = try check(format: "vhdx", options: ["-o", "block_size=1M"], expected: .vhdx)
        XCTAssertEqual(image.blockSize, 1 << 20)
    }

    func testVHDXWithDefaultBlocks() throws {
        let image = try check(format: "vhdx", expected: .vhdx)
        let vhdx = try XCTUnwrap(image as? VHDXImage)
        // qemu's "block state zero" default: never-written blocks are ZERO, not NOT_PRESENT.
        let states = (0..<vhdx.bat.payloadBlockCount).compactMap { vhdx.payloadState(ofBlock: $0) }
        XCTAssertTrue(states.contains(.zero) || states.contains(.notPresent))
        XCTAssertTrue(states.contains(.fullyPresent))
    }

    func testVHDXMadeByQemuConvert() throws {
        let directory = try TemporaryDirectory("qemu")
        let source = directory.path("source.vhdx"), converted = directory.path("converted.vhdx")
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "vhdx", source, "\(Self.size)"])
        try FormatTools.qemuIO(source, format: "vhdx", Self.writes)
        try FormatTools.run("qemu-img", ["convert", "-O", "vhdx", "-o", "subformat=dynamic", source, converted])
        let reference = try FormatTools.referenceContent(of: converted, format: "vhdx", in: directory)
        try ImageChecks.checkAgainstReference(try DiskImageOpener.open(path: converted), reference: reference)
    }

    func testFixedVHDXMadeByQemu() throws {
        _ = try check(format: "vhdx", options: ["-o", "subformat=fixed,block_size=2M"], expected: .vhdx, expectSparse: false)
    }

    func testDynamicVHD() throws {
        let image = try check(format: "vpc", expected: .vhd)
        XCTAssertEqual(image.blockSize, 2 << 20)
        let footer = try XCTUnwrap((image as? VHDImage)?.footer)
        XCTAssertEqual(footer.creatorApplication, "qemu")
        XCTAssertEqual(footer.currentSize, footer.geometrySize, "qemu stores its CHS-rounded size as Current Size")
    }

    func testFixedVHDWithForcedSize() throws {
        let directory = try TemporaryDirectory("qemu")
        let source = directory.path("source.raw"), fixed = directory.path("fixed.vhd")
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "raw", source, "\(Self.size + 3 * 512)"])
        try FormatTools.qemuIO(source, format: "raw", Self.writes)
        try FormatTools.run("qemu-img", ["convert", "-O", "vpc", "-o", "subformat=fixed,force_size=on", source, fixed])
        let reference = try FormatTools.referenceContent(of: fixed, format: "vpc", in: directory)
        let image = try DiskImageOpener.open(path: fixed)
        XCTAssertEqual(image.format, .vhd)
        XCTAssertEqual(image.virtualSize, Self.size + 3 * 512, "force_size keeps the exact size")
        XCTAssertEqual((image as? VHDImage)?.footer.diskType, .fixed)
        try ImageChecks.checkAgainstReference(image, reference: reference)
    }

    func testQCOW2() throws {
        let image = try check(format: "qcow2", expected: .qcow2)
        XCTAssertEqual(image.blockSize, 64 << 10)
    }

    func testQCOW2VersionTwoWithSmallClusters() throws {
        _ = try check(format: "qcow2", options: ["-o", "compat=0.10,cluster_size=4096"], expected: .qcow2)
    }

    func testRaw() throws {
        let image = try check(format: "raw", expected: .raw)
        XCTAssertEqual(image.blockSize, 1 << 20)
    }

    func testExplicitFormatOverridesProbing() throws {
        let directory = try TemporaryDirectory("qemu")
        let path = directory.path("disk.qcow2")
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "qcow2", path, "1M"])
        let asRaw = try DiskImageOpener.open(path: path, format: .raw)
        XCTAssertEqual(asRaw.format, .raw)
        XCTAssertEqual(asRaw.virtualSize, UInt64(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? -1))
        ImageChecks.expectError(.invalid, ["past the end"]) { try ImageChecks.read(asRaw, at: asRaw.virtualSize, count: 1) }
    }
}
