import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Unit tests of the format helpers that need no external tools.
final class FormatUnitTests: XCTestCase {
    func testWellKnownGUIDs() {
        XCTAssertEqual(VHDXRegionTable.batGuid.description, "2dc27766-f623-4200-9d64-115e9bfd4a08")
        XCTAssertEqual(VHDXRegionTable.metadataGuid.description, "8b7ca206-4790-4b9a-b8fe-575f050f886e")
        XCTAssertEqual(VHDXMetadata.fileParametersGuid.description, "caa16737-fa36-4d43-b3b6-33f0aa44e76b")
        XCTAssertEqual(VHDXMetadata.virtualDiskSizeGuid.description, "2fa54224-cd1b-4876-b211-5dbed83bf4b8")
        XCTAssertEqual(VHDXMetadata.page83Guid.description, "beca12ab-b2e6-4523-93ef-c309e000c746")
        XCTAssertEqual(VHDXMetadata.logicalSectorSizeGuid.description, "8141bf1d-a96f-4709-ba47-f233a8faab5f")
        XCTAssertEqual(VHDXMetadata.physicalSectorSizeGuid.description, "cda348c7-445d-4471-9cc9-e9885251c556")
        XCTAssertEqual(VHDXMetadata.parentLocatorGuid.description, "a8d35f2d-b30b-454d-abf7-d3d84834ab0c")
        XCTAssertEqual(VHDXParentLocator.vhdxLocatorType.description, "b04aefb7-d19e-4a81-b789-25b8e9445913")
        // Stored layout: Data1–Data3 little-endian.
        XCTAssertEqual(Array(VHDXRegionTable.batGuid.bytes.prefix(8)), [0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42])
        let guid = MSGUID.random()
        XCTAssertEqual(MSGUID(guid.braced), guid)
        XCTAssertNil(MSGUID("not-a-guid"))
    }

    func testSectorBitmapRuns() {
        var bitmap = SectorBitmap(sectors: 4096)
        bitmap.set(from: 3, to: 200)
        bitmap.set(from: 1000, to: 1001)
        bitmap.set(from: 2048, to: 4096)
        var runs: [[Int]] = []
        bitmap.forEachRun(from: 0, to: 4096) { runs.append([$0, $1, $2 ? 1 : 0]) }
        XCTAssertEqual(runs, [[0, 3, 0], [3, 200, 1], [200, 1000, 0], [1000, 1001, 1], [1001, 2048, 0], [2048, 4096, 1]])
        runs = []
        bitmap.forEachRun(from: 150, to: 1000) { runs.append([$0, $1, $2 ? 1 : 0]) }
        XCTAssertEqual(runs, [[150, 200, 1], [200, 1000, 0]])
        // VHD bitmaps are MSB-first: 0x80 marks sector 0.
        let vhd = SectorBitmap(msbFirst: [0x80, 0x01])
        XCTAssertTrue(vhd.isSet(0))
        XCTAssertFalse(vhd.isSet(1))
        XCTAssertTrue(vhd.isSet(15))
        XCTAssertEqual(vhd.msbFirstBytes, [0x80, 0x01])
        // Beyond the bitmap everything reads as clear, in one run.
        runs = []
        SectorBitmap(sectors: 8).forEachRun(from: 0, to: 1_000_000) { runs.append([$0, $1, $2 ? 1 : 0]) }
        XCTAssertEqual(runs, [[0, 1_000_000, 0]])
    }

    func testFileOverlayLaterWritesWin() {
        var overlay = FileOverlay()
        overlay.write([UInt8](repeating: 1, count: 100), at: 100)
        overlay.zero(at: 150, length: 20)
        overlay.write([2, 2], at: 160)
        var buffer = [UInt8](repeating: 9, count: 300)
        buffer.withUnsafeMutableBytes { overlay.apply(to: $0, fileOffset: 0) }
        XCTAssertEqual(buffer[99], 9)
        XCTAssertEqual(buffer[100], 1)
        XCTAssertEqual(buffer[149], 1)
        XCTAssertEqual(buffer[150], 0)
        XCTAssertEqual(Array(buffer[159...162]), [0, 2, 2, 0])
        XCTAssertEqual(buffer[170], 1)
        XCTAssertEqual(buffer[199], 1)
        XCTAssertEqual(buffer[200], 9)
        XCTAssertTrue(overlay.intersects(offset: 0, length: 101))
        XCTAssertFalse(overlay.intersects(offset: 200, length: 50))
        var shifted = [UInt8](repeating: 9, count: 10)
        shifted.withUnsafeMutableBytes { overlay.apply(to: $0, fileOffset: 155) }
        XCTAssertEqual(shifted, [0, 0, 0, 0, 0, 2, 2, 0, 0, 0])
    }

    func testParentPathResolution() {
        let child = "/vms/disks/child.vhdx"
        XCTAssertEqual(ParentPathResolver.resolve(relative: ".\\base.vhdx", childPath: child), "/vms/disks/base.vhdx")
        XCTAssertEqual(ParentPathResolver.resolve(relative: "..\\images\\base.vhdx", childPath: child), "/vms/images/base.vhdx")
        XCTAssertEqual(ParentPathResolver.candidates(relative: ["base.vhdx"], absolute: ["C:\\VMs\\base.vhdx", "\\\\?\\C:\\x.vhdx"], childPath: child),
                       ["/vms/disks/base.vhdx", "C:/VMs/base.vhdx", "C:/x.vhdx"])
        XCTAssertTrue(ParentPathResolver.isAbsolute("C:\\VMs\\a.vhdx"))
        XCTAssertFalse(ParentPathResolver.isAbsolute("..\\a.vhdx"))
        XCTAssertEqual(VHDXWriter.windowsRelativePath(from: "/vms/disks/child.vhdx", to: "/vms/disks/base.vhdx"), ".\\base.vhdx")
        XCTAssertEqual(VHDXWriter.windowsRelativePath(from: "/vms/disks/child.vhdx", to: "/vms/images/base.vhdx"), "..\\images\\base.vhdx")
    }

    func testExtentListMergesAndLayerMapResolves() throws {
        var list = ExtentList()
        list.append(offset: 0, length: 10, .data)
        list.append(offset: 10, length: 5, .data)
        list.append(offset: 15, length: 0, .zero)
        list.append(offset: 15, length: 5, .zero)
        XCTAssertEqual(list.extents, [Extent(offset: 0, length: 15, flag: .data), Extent(offset: 15, length: 5, flag: .zero)])
        var map = LayerMap()
        map.append(offset: 0, length: 20, .parent)
        XCTAssertEqual(try map.resolve(parent: nil, path: "/x"), [Extent(offset: 0, length: 20, flag: .zero)], "no parent: zeros")
    }

    func testVHDChecksumsAndFooterRoundTrip() {
        let footer = VHDFooter(dataOffset: 512, timestamp: 1, creatorApplication: "win ", creatorVersion: 0x000A_0000,
                               creatorHostOS: "Wi2k", originalSize: 1 << 20, currentSize: 1 << 20, cylinders: 30, heads: 4,
                               sectorsPerTrack: 17, diskType: .dynamic, uniqueId: .random())
        let bytes = footer.serialized()
        guard case .success(let parsed) = VHDFooter.parse(bytes) else { return XCTFail("footer does not parse") }
        XCTAssertEqual(parsed.currentSize, 1 << 20)
        XCTAssertEqual(parsed.virtualSize, 1 << 20)
        XCTAssertEqual(parsed.uniqueId, footer.uniqueId)
        var damaged = bytes
        damaged[100] ^= 1
        guard case .failure(let rejection) = VHDFooter.parse(damaged) else { return XCTFail("damage not detected") }
        XCTAssertTrue(rejection.text.contains("checksum mismatch"))
        var virtualPC = footer
        virtualPC.creatorApplication = "vpc "
        XCTAssertEqual(virtualPC.virtualSize, 1 << 20, "Current Size, whatever the creator")
        XCTAssertEqual(virtualPC.geometrySize, 30 * 4 * 17 * 512)
    }
}
