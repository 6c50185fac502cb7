import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Differencing VHDX and VHD children over qemu-made parents, and qcow2 backing files: reads
/// fall through to the parent where the child holds nothing; missing, cyclic and mismatched
/// parents are refused with clear messages.
final class DifferencingTests: XCTestCase {
    static let parentWrites = ["write -P 0x11 0 3M", "write -P 0x22 5M 2M", "write -P 0x33 9M 1M", "write -P 0x44 15M 1M"]

    /// Regions written into the child, ascending: a partial block, a whole block, zeros over
    /// parent data (partial), a region spanning blocks, and a short run near the end.
    static func childRegions() -> [(UInt64, [UInt8])] {
        var random = SeededGenerator(seed: 7)
        return [
            (0, random.bytes(64 << 10)),
            (1 << 20, random.bytes(1 << 20)),
            (3 * (1 << 20) - 4096, random.bytes(4096)),
            (5 * (1 << 20) + 512, [UInt8](repeating: 0, count: 8192)),
            (9 * (1 << 20) + (1 << 19), random.bytes((1 << 20) + 65536)),
            (15 * (1 << 20) + 4096, random.bytes(512)),
        ]
    }

    /// Writes `regions` through `writer` and returns `base` with them applied.
    static func write(_ regions: [(UInt64, [UInt8])], to writer: DiskImageWriter, over base: [UInt8]) throws -> [UInt8] {
        var expected = base
        for (offset, bytes) in regions {
            try bytes.withUnsafeBytes { try writer.write(at: offset, $0) }
            expected.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
        }
        try writer.finish()
        return expected
    }

    /// A qemu-made parent with patterns; returns its path and reference content.
    private func makeParent(_ format: String, options: [String] = [], name: String,
                            in directory: TemporaryDirectory) throws -> (String, [UInt8]) {
        let path = directory.path(name)
        try FormatTools.run("qemu-img", ["create", "-q", "-f", format] + options + [path, "16M"])
        try FormatTools.qemuIO(path, format: format, Self.parentWrites)
        return (path, try FormatTools.referenceContent(of: path, format: format, in: directory))
    }

    func testDifferencingVHDXReadsFallThroughToParent() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vhdx", options: ["-o", "block_size=1M"], name: "base.vhdx", in: directory)
        let childPath = directory.path("child.vhdx")
        let writer = try DiskImageWriters.createDifferencing(path: childPath, format: .vhdx, parentPath: parentPath, blockSize: 1 << 20)
        let expected = try Self.write(Self.childRegions(), to: writer, over: parentContent)

        let image = try DiskImageOpener.open(path: childPath)
        let child = try XCTUnwrap(image as? VHDXImage)
        XCTAssertTrue(child.metadata.hasParent)
        XCTAssertEqual(child.parent?.path, parentPath)
        XCTAssertEqual(child.metadata.parentLocator?.value("relative_path"), ".\\base.vhdx")
        XCTAssertEqual(child.payloadState(ofBlock: 0), .partiallyPresent)
        XCTAssertEqual(child.payloadState(ofBlock: 1), .fullyPresent)
        XCTAssertEqual(child.payloadState(ofBlock: 2), .partiallyPresent)
        XCTAssertEqual(child.payloadState(ofBlock: 4), .notPresent)
        try ImageChecks.checkAgainstReference(image, reference: expected)
        if FormatTools.find("vhdiinfo") != nil {
            let info = try FormatTools.run("vhdiinfo", [childPath])
            XCTAssertTrue(info.output.contains("Differential") || info.output.contains("differential"), info.output)
        }
    }

    func testDifferencingVHDXWithMissingParent() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vhdx", name: "base.vhdx", in: directory)
        let childPath = directory.path("child.vhdx")
        _ = try Self.write(Self.childRegions(), to: try DiskImageWriters.createDifferencing(path: childPath, format: .vhdx, parentPath: parentPath), over: parentContent)
        try FileManager.default.moveItem(atPath: parentPath, toPath: directory.path("moved.vhdx"))
        ImageChecks.expectError(.notFound, ["disk \(childPath)", "parent \(parentPath) not found", "relative path .\\base.vhdx", "absolute \(parentPath)"]) {
            try DiskImageOpener.open(path: childPath)
        }
    }

    func testDifferencingVHDXChainLoops() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vhdx", name: "p.vhdx", in: directory)
        let aPath = directory.path("a.vhdx"), bPath = directory.path("b.vhdx")
        _ = try Self.write([], to: try DiskImageWriters.createDifferencing(path: aPath, format: .vhdx, parentPath: parentPath), over: parentContent)
        _ = try Self.write([], to: try DiskImageWriters.createDifferencing(path: bPath, format: .vhdx, parentPath: aPath), over: parentContent)
        // p.vhdx becomes a copy of b.vhdx: a -> p (really b) -> a.
        try FileManager.default.removeItem(atPath: parentPath)
        try FileManager.default.copyItem(atPath: bPath, toPath: parentPath)
        ImageChecks.expectError(.corrupt, ["parent chain loops back to \(aPath)"]) { try DiskImageOpener.open(path: aPath) }
        // A disk naming itself as its parent.
        try FileManager.default.removeItem(atPath: parentPath)
        try FileManager.default.copyItem(atPath: aPath, toPath: parentPath)
        ImageChecks.expectError(.corrupt, ["disk \(parentPath): parent chain loops back to \(parentPath)"]) { try DiskImageOpener.open(path: parentPath) }
    }

    func testDifferencingVHDXRefusesModifiedParent() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vhdx", name: "base.vhdx", in: directory)
        let childPath = directory.path("child.vhdx")
        _ = try Self.write(Self.childRegions(), to: try DiskImageWriters.createDifferencing(path: childPath, format: .vhdx, parentPath: parentPath), over: parentContent)
        try FormatTools.qemuIO(parentPath, format: "vhdx", ["write -P 0x99 0 4k"]) // changes DataWriteGuid
        ImageChecks.expectError(.corrupt, ["parent \(parentPath) does not match", "DataWriteGuid"]) { try DiskImageOpener.open(path: childPath) }
    }

    func testDifferencingVHDReadsFallThroughToParent() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vpc", name: "base.vhd", in: directory)
        let parent = try DiskImageOpener.open(path: parentPath)
        let childPath = directory.path("child.vhd")
        let writer = try DiskImageWriters.createDifferencing(path: childPath, format: .vhd, parentPath: parentPath)
        let expected = try Self.write(Self.childRegions(), to: writer, over: parentContent)
        let image = try DiskImageOpener.open(path: childPath)
        let child = try XCTUnwrap(image as? VHDImage)
        XCTAssertEqual(child.footer.diskType, .differencing)
        XCTAssertEqual(child.virtualSize, parent.virtualSize)
        XCTAssertEqual(child.dynamicHeader?.parentUnicodeName, "base.vhd")
        try ImageChecks.checkAgainstReference(image, reference: expected)
        if FormatTools.find("vhdiinfo") != nil {
            let info = try FormatTools.run("vhdiinfo", [childPath])
            XCTAssertTrue(info.output.lowercased().contains("differential"), info.output)
        }
        try FileManager.default.removeItem(atPath: parentPath)
        ImageChecks.expectError(.notFound, ["disk \(childPath)", "parent \(parentPath) not found", "relative path .\\base.vhd"]) {
            try DiskImageOpener.open(path: childPath)
        }
    }

    func testDifferencingVHDRefusesWrongParentUniqueId() throws {
        let directory = try TemporaryDirectory("diff")
        let (parentPath, parentContent) = try makeParent("vpc", name: "base.vhd", in: directory)
        let childPath = directory.path("child.vhd")
        _ = try Self.write([], to: try DiskImageWriters.createDifferencing(path: childPath, format: .vhd, parentPath: parentPath), over: parentContent)
        // Replace the parent by another VHD of the same name.
        try FileManager.default.removeItem(atPath: parentPath)
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "vpc", parentPath, "16M"])
        ImageChecks.expectError(.corrupt, ["parent \(parentPath) does not match", "unique id"]) { try DiskImageOpener.open(path: childPath) }
    }

    func testQCOW2WithBackingFiles() throws {
        let directory = try TemporaryDirectory("backing")
        let (basePath, _) = try makeParent("qcow2", name: "base.qcow2", in: directory)
        let topPath = directory.path("top.qcow2")
        // The top is larger than its backing file: the extra 8 MiB read as zeros where unwritten.
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", topPath, "24M"])
        try FormatTools.qemuIO(topPath, format: "qcow2", ["write -P 0x55 1M 64k", "write -z 5M 1M", "write -P 0x66 9437696 4k", "write -P 0x77 20M 1M"])
        let reference = try FormatTools.referenceContent(of: topPath, format: "qcow2", in: directory)
        let image = try DiskImageOpener.open(path: topPath)
        XCTAssertEqual((image as? QCOW2Image)?.parent?.path, basePath)
        try ImageChecks.checkAgainstReference(image, reference: reference)

        // A raw backing file, named by an absolute path.
        let rawBase = directory.path("base.raw"), rawTop = directory.path("raw-top.qcow2")
        try FormatTools.run("qemu-img", ["convert", "-O", "raw", basePath, rawBase])
        try FormatTools.run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", rawBase, "-F", "raw", rawTop, "16M"])
        try FormatTools.qemuIO(rawTop, format: "qcow2", ["write -P 0x88 2M 1M"])
        try ImageChecks.checkAgainstReference(try DiskImageOpener.open(path: rawTop),
                                              reference: try FormatTools.referenceContent(of: rawTop, format: "qcow2", in: directory))

        try FileManager.default.removeItem(atPath: basePath)
        ImageChecks.expectError(.notFound, ["disk \(topPath)", "parent \(basePath) not found", "backing file base.qcow2"]) {
            try DiskImageOpener.open(path: topPath)
        }
    }
}
