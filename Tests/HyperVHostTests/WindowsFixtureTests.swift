import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// The Windows-made VHDX samples in /work/shared/fixtures/hyperv (see their README.md): a fixed
/// and a dynamic 10 MiB disk with an MBR partition table, from dissect.hypervisor's test data.
final class WindowsFixtureTests: XCTestCase {
    static let fixtureDirectory = "/work/shared/fixtures/hyperv"

    /// Decompresses a fixture into `directory` (never into the source tree).
    static func expand(_ name: String, into directory: TemporaryDirectory) throws -> String {
        let source = "\(fixtureDirectory)/\(name).gz"
        guard FileManager.default.fileExists(atPath: source) else {
            if FormatTools.isCI { XCTFail("fixture \(source) is missing") }
            throw XCTSkip("fixture \(source) is missing")
        }
        let target = directory.path(name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FormatTools.require("gzip"))
        process.arguments = ["-dc", source]
        guard FileManager.default.createFile(atPath: target, contents: nil) else { throw PluginError(.io, "cannot create \(target)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: target))
        process.standardOutput = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        XCTAssertEqual(process.terminationStatus, 0)
        return target
    }

    private func checkFacts(_ image: DiskImage) throws {
        XCTAssertEqual(image.format, .vhdx)
        XCTAssertEqual(image.virtualSize, 0xA0_0000)
        let boot = try ImageChecks.read(image, at: 0, count: 512)
        XCTAssertEqual(boot[510], 0x55, "MBR signature")
        XCTAssertEqual(boot[511], 0xAA, "MBR signature")
        let ones = try ImageChecks.read(image, at: 0x20_0000, count: 512)
        XCTAssertTrue(ones.allSatisfy { $0 == 0xFF }, "the 512 bytes at 0x200000 are all 0xFF")
    }

    func testFixedVHDX() throws {
        let directory = try TemporaryDirectory("fixtures")
        let path = try Self.expand("fixed.vhdx", into: directory)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let image = try DiskImageOpener.open(path: path)
        let vhdx = try XCTUnwrap(image as? VHDXImage)
        XCTAssertEqual(image.blockSize, 0x20_0000)
        XCTAssertEqual(vhdx.logicalSectorSize, 512)
        XCTAssertTrue(vhdx.isFixed)
        XCTAssertFalse(vhdx.metadata.hasParent)
        XCTAssertEqual(vhdx.metadata.page83, MSGUID("4a49d245-db0a-4634-9818-9f93db5ba6c1"))
        for block in 0..<vhdx.bat.payloadBlockCount {
            XCTAssertEqual(vhdx.payloadState(ofBlock: block), .fullyPresent, "block \(block)")
        }
        try checkFacts(image)
        let reference = try FormatTools.referenceContent(of: path, format: "vhdx", in: directory)
        try ImageChecks.checkAgainstReference(image, reference: reference)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before, "opening must not modify the file")
    }

    func testDynamicVHDX() throws {
        let directory = try TemporaryDirectory("fixtures")
        let path = try Self.expand("dynamic.vhdx", into: directory)
        let image = try DiskImageOpener.open(path: path)
        let vhdx = try XCTUnwrap(image as? VHDXImage)
        XCTAssertEqual(image.blockSize, 0x200_0000)
        XCTAssertFalse(vhdx.isFixed)
        XCTAssertEqual(vhdx.metadata.page83, MSGUID("788015f0-5e93-4bd2-a5de-b0cd8459db11"))
        try checkFacts(image)
        let reference = try FormatTools.referenceContent(of: path, format: "vhdx", in: directory)
        try ImageChecks.checkAgainstReference(image, reference: reference)
    }
}
