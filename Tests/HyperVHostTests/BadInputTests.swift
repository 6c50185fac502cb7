import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Damaged and unsupported images: each must fail with a PluginError whose message names the
/// file and the problem, never crash.
final class BadInputTests: XCTestCase {
    private func copyOfQemuImage(_ format: String, options: [String] = [], size: String = "8M", writes: [String],
                                 in directory: TemporaryDirectory, name: String) throws -> String {
        let path = directory.path(name)
        try FormatTools.run("qemu-img", ["create", "-q", "-f", format] + options + [path, size])
        if !writes.isEmpty { try FormatTools.qemuIO(path, format: format, writes) }
        return path
    }

    private func flip(_ path: String, at offset: UInt64) throws {
        let byte = try FileReader(path: path).readBytes(at: offset, count: 1)
        try VHDXLogCrafting.patch(path, at: offset, [byte[0] ^ 0xFF])
    }

    func testVHDXBadSignature() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("vhdx", writes: [], in: directory, name: "a.vhdx")
        try VHDXLogCrafting.patch(path, at: 0, Array("vhdxFILE".utf8))
        ImageChecks.expectError(.corrupt, ["disk \(path)", "bad signature", "vhdxfile"]) {
            try DiskImageOpener.open(path: path, format: .vhdx)
        }
        XCTAssertEqual(try DiskImageOpener.open(path: path).format, .raw, "without the signature, probing sees raw")
    }

    func testVHDXHeaders() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("vhdx", writes: ["write -P 0x42 0 1M"], in: directory, name: "a.vhdx")
        let reference = try FormatTools.referenceContent(of: path, format: "vhdx", in: directory)
        try flip(path, at: 64 * 1024 + 200)
        // One damaged header: the other one is used.
        try ImageChecks.checkAgainstReference(try DiskImageOpener.open(path: path), reference: reference)
        try flip(path, at: 128 * 1024 + 300)
        ImageChecks.expectError(.corrupt, ["disk \(path): both headers have bad checksums; the file is damaged"]) {
            try DiskImageOpener.open(path: path)
        }
    }

    func testVHDXRegionTableChecksums() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("vhdx", writes: [], in: directory, name: "a.vhdx")
        try flip(path, at: 192 * 1024 + 40)
        XCTAssertNoThrow(try DiskImageOpener.open(path: path), "the copy at 256 KiB is used")
        try flip(path, at: 256 * 1024 + 40)
        ImageChecks.expectError(.corrupt, ["disk \(path)", "both region tables are damaged", "bad checksum"]) {
            try DiskImageOpener.open(path: path)
        }
    }

    func testVHDXBATEntryPastEndOfFile() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("vhdx", options: ["-o", "block_size=1M"], writes: ["write -P 0x42 0 1M"], in: directory, name: "a.vhdx")
        let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? VHDXImage)
        let size = try FileReader(path: path).physicalSize
        var entry = [UInt8](repeating: 0, count: 8)
        entry.putLE64((1 << 40) | 6, at: 0)
        try VHDXLogCrafting.patch(path, at: image.regions.bat.fileOffset + 5 * 8, entry)
        ImageChecks.expectError(.corrupt, ["disk \(path): BAT entry 5 points past the end of the file (offset \(1 << 40), file size \(size))"]) {
            try DiskImageOpener.open(path: path)
        }
    }

    func testVHDFooterChecksum() throws {
        let directory = try TemporaryDirectory("bad")
        let dynamic = try copyOfQemuImage("vpc", writes: ["write -P 0x42 0 1M"], in: directory, name: "d.vhd")
        let reference = try FormatTools.referenceContent(of: dynamic, format: "vpc", in: directory)
        let size = try FileReader(path: dynamic).physicalSize
        try flip(dynamic, at: size - 512 + 40)
        // A dynamic disk falls back on its footer copy at offset 0.
        try ImageChecks.checkAgainstReference(try DiskImageOpener.open(path: dynamic), reference: reference)
        try flip(dynamic, at: 40)
        ImageChecks.expectError(.corrupt, ["disk \(dynamic)", "footer is damaged", "checksum mismatch"]) {
            try DiskImageOpener.open(path: dynamic)
        }

        let fixed = directory.path("f.vhd")
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=fixed", fixed, "4M"])
        let fixedSize = try FileReader(path: fixed).physicalSize
        try flip(fixed, at: fixedSize - 512 + 48)
        ImageChecks.expectError(.corrupt, ["disk \(fixed)", "checksum mismatch"]) { try DiskImageOpener.open(path: fixed, format: .vhd) }
    }

    func testVHDBATEntryPastEndOfFile() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("vpc", writes: ["write -P 0x42 0 1M"], in: directory, name: "d.vhd")
        let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? VHDImage)
        let tableOffset = try XCTUnwrap(image.dynamicHeader?.tableOffset)
        var entry = [UInt8](repeating: 0, count: 4)
        entry.putBE32(0x7FFF_0000, at: 0)
        try VHDXLogCrafting.patch(path, at: tableOffset + 4, entry)
        ImageChecks.expectError(.corrupt, ["disk \(path): BAT entry 1 points past the end of the file"]) { try DiskImageOpener.open(path: path) }
    }

    func testQCOW2CompressedClustersAreRefused() throws {
        let directory = try TemporaryDirectory("bad")
        let source = try copyOfQemuImage("qcow2", writes: ["write -P 0x42 1M 1M"], in: directory, name: "plain.qcow2")
        let compressed = directory.path("compressed.qcow2")
        try FormatTools.run("qemu-img", ["convert", "-c", "-O", "qcow2", source, compressed])
        let image = try DiskImageOpener.open(path: compressed)
        ImageChecks.expectError(.unsupported, ["disk \(compressed)", "virtual offset \(1 << 20) is compressed", "convert the image without -c"]) {
            try image.allocationMap()
        }
        ImageChecks.expectError(.unsupported, ["disk \(compressed)", "compressed"]) { try ImageChecks.read(image, at: 1 << 20, count: 4096) }
        XCTAssertEqual(try ImageChecks.read(image, at: 0, count: 4096), [UInt8](repeating: 0, count: 4096), "unallocated clusters still read")
    }

    func testQCOW2UnsupportedFeatures() throws {
        let directory = try TemporaryDirectory("bad")
        // crypt_method set in an otherwise plain image (deterministic) …
        let patched = try copyOfQemuImage("qcow2", writes: [], in: directory, name: "patched-crypt.qcow2")
        try VHDXLogCrafting.patch(patched, at: 32, [0, 0, 0, 2])
        ImageChecks.expectError(.unsupported, ["disk \(patched)", "encrypted (crypt_method 2)"]) { try DiskImageOpener.open(path: patched) }
        // … and a real LUKS image (qemu's key-slot timing can fail on a busy machine; then only
        // the patched image is checked).
        let encrypted = directory.path("encrypted.qcow2")
        let created = try FormatTools.run("qemu-img", ["create", "-q", "--object", "secret,id=sec0,data=123456", "-f", "qcow2",
                                                       "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100",
                                                       encrypted, "4M"], allowFailure: true)
        if created.status == 0 {
            ImageChecks.expectError(.unsupported, ["disk \(encrypted)", "encrypted"]) { try DiskImageOpener.open(path: encrypted) }
        }

        let extended = try copyOfQemuImage("qcow2", options: ["-o", "extended_l2=on"], writes: [], in: directory, name: "extended.qcow2")
        ImageChecks.expectError(.unsupported, ["disk \(extended)", "extended L2"]) { try DiskImageOpener.open(path: extended) }

        let external = try copyOfQemuImage("qcow2", options: ["-o", "data_file=\(directory.path("data.raw"))"], writes: [],
                                           in: directory, name: "external.qcow2")
        ImageChecks.expectError(.unsupported, ["disk \(external)", "external data file"]) { try DiskImageOpener.open(path: external) }

        let future = try copyOfQemuImage("qcow2", writes: [], in: directory, name: "future.qcow2")
        try VHDXLogCrafting.patch(future, at: 72, [0x80, 0, 0, 0, 0, 0, 0, 0])
        ImageChecks.expectError(.unsupported, ["disk \(future)", "unknown incompatible qcow2 features"]) { try DiskImageOpener.open(path: future) }
    }

    func testQCOW2L2TablePastEndOfFile() throws {
        let directory = try TemporaryDirectory("bad")
        let path = try copyOfQemuImage("qcow2", writes: ["write -P 0x42 0 64k"], in: directory, name: "a.qcow2")
        let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? QCOW2Image)
        var entry = [UInt8](repeating: 0, count: 8)
        entry.putBE64((1 << 63) | (1 << 40), at: 0)
        try VHDXLogCrafting.patch(path, at: image.header.l1TableOffset, entry)
        let damaged = try DiskImageOpener.open(path: path)
        ImageChecks.expectError(.corrupt, ["disk \(path)", "L1 entry 0 points to an L2 table at offset \(1 << 40)"]) { try damaged.allocationMap() }
    }

    /// Every L1 entry pointing at one L2 table: a tiny file describing a huge disk. The map must
    /// stay fast (each table is decoded once) and, when the ranges would exceed the cap, fail
    /// cleanly instead of exhausting memory.
    func testQCOW2SharedL2TableIsBoundedInTimeAndMemory() throws {
        let directory = try TemporaryDirectory("bad")
        func shareFirstL2Table(_ path: String) throws -> QCOW2Image {
            let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? QCOW2Image)
            let l1 = try FileReader(path: path).readBytes(at: image.header.l1TableOffset, count: 8)
            let count = Int(image.header.l1Size)
            try VHDXLogCrafting.patch(path, at: image.header.l1TableOffset, Array((0..<count).map { _ in l1 }.joined()))
            return try XCTUnwrap(try DiskImageOpener.open(path: path) as? QCOW2Image)
        }
        // 64 GiB in 128 L2 ranges of 512 MiB, all sharing the table that maps [0, 64 KiB).
        let shared = try copyOfQemuImage("qcow2", size: "64G", writes: ["write -P 0x42 0 64k"], in: directory, name: "shared.qcow2")
        let image = try shareFirstL2Table(shared)
        let start = Date()
        let map = try image.allocationMap()
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertEqual(map.filter { $0.flag == .data }.count, 128)
        XCTAssertEqual(try ImageChecks.read(image, at: 5 << 29, count: 512), [UInt8](repeating: 0x42, count: 512))

        // 4 KiB clusters, alternating allocated and unallocated entries: 512 ranges per table,
        // 16 Mi ranges over 32768 L1 entries, past the 8 M cap.
        let writes = (0..<256).map { "write -P 0x42 \($0 * 8192) 4k" }
        let fragmented = try copyOfQemuImage("qcow2", options: ["-o", "cluster_size=4096"], size: "64G", writes: writes,
                                             in: directory, name: "fragmented.qcow2")
        let damaged = try shareFirstL2Table(fragmented)
        ImageChecks.expectError(.unsupported, ["disk \(fragmented)", "implausibly fragmented"]) { try damaged.allocationMap() }
    }

    func testMissingFileAndDirectory() throws {
        let directory = try TemporaryDirectory("bad")
        ImageChecks.expectError(.notFound, ["disk \(directory.path("nothing.vhdx")): file not found"]) {
            try DiskImageOpener.open(path: directory.path("nothing.vhdx"))
        }
        ImageChecks.expectError(.invalid, ["is a directory"]) { try DiskImageOpener.open(path: directory.url.path) }
    }

    func testEmptyAndTinyFiles() throws {
        let directory = try TemporaryDirectory("bad")
        let empty = directory.path("empty.img")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        let image = try DiskImageOpener.open(path: empty)
        XCTAssertEqual(image.format, .raw)
        XCTAssertEqual(image.virtualSize, 0)
        XCTAssertEqual(try image.allocationMap(), [])
        for format in [DiskFormat.vhdx, .vhd, .qcow2] {
            XCTAssertThrowsError(try DiskImageOpener.open(path: empty, format: format)) { error in
                XCTAssertEqual((error as? PluginError)?.code, .corrupt, "\(format): \(error)")
            }
        }
    }
}
