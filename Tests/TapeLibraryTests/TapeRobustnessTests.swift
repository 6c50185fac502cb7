import Foundation
import Glibc
import PluginAPI
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// Drives that are offline or busy, write-protected and WORM cartridges, concurrent jobs in
/// separate processes, and recatalog of a tape whose last catalog is missing.
final class TapeRobustnessTests: XCTestCase {
    func archive(_ fixture: TapeFixture, _ name: String, size: Int = 50_000, seed: UInt64 = 1) throws -> [UInt8] {
        try HostArchive.make(root: fixture.root, rp: name, chunks: [TestData.random(size, seed: seed)])
    }

    func testOfflineDriveIsSkippedAndWriteProtectedTapeIsLeftAlone() throws {
        let fixture = try TapeFixture(self, drives: 2, barcodes: ["A00001L8", "A00002L8"])
        try fixture.command("vtl.fault", ["library": "lib1", "drive": 0, "offline": true])
        try fixture.command("vtl.fault", ["library": "lib1", "barcode": "A00001L8", "write_protect": true])
        let bytes = try archive(fixture, "o")
        let description = try fixture.store(TapeFixture.request("o"), bytes)
        XCTAssertEqual(description.location, "A00002L8 file 1", "the write-protected A00001L8 is not written")
        let inventory = try fixture.command("library.inventory", ["library": "lib1"])
        let drive1 = inventory["elements"]?.arrayValue?.first { $0["element"]?.stringValue == "drive:1" }
        XCTAssertEqual(drive1?["barcode"]?.stringValue, "A00002L8", "loaded into the drive that is online")
        XCTAssertEqual(try fixture.read("o"), bytes)
        let faults = try fixture.command("vtl.fault", ["library": "lib1", "clear": true])
        XCTAssertEqual(faults["faults"], .array([]))
    }

    func testWormTapeWithAPartialFileBecomesSuspect() throws {
        let fixture = try TapeFixture(self, barcodes: ["W00001L8"])
        let bytes = try archive(fixture, "w")
        XCTAssertEqual(try fixture.store(TapeFixture.request("w1", pool: "p", days: 3650, colocate: true), bytes).location, "W00001L8 file 1")
        // A writer that died leaves a partial file after the catalog.
        let library = try VirtualLibrary(directory: fixture.vtl)
        let drive = try library.openDrive(0)
        try drive.spaceToEndOfData()
        try [UInt8](repeating: 1, count: 4096).withUnsafeBytes { try drive.write($0) }
        try drive.close()
        try fixture.command("vtl.insert", ["library": "lib1", "barcode": "A00002L8", "slot": 2])
        XCTAssertEqual(try fixture.store(TapeFixture.request("w2", pool: "p", days: 3650, colocate: true), bytes).location, "A00002L8 file 1")
        XCTAssertEqual(try fixture.tapeState("W00001L8"), "suspect")
        XCTAssertEqual(try fixture.read("w1"), bytes, "what was complete on it still restores")
    }

    func testConcurrentJobsInSeparateProcessesUseSeparateTapesAndDrives() throws {
        let fixture = try TapeFixture(self, drives: 2, barcodes: ["A00001L8", "A00002L8"], wait: 10)
        let (binary, prefix) = try fixture.compileHost(wait: 10)
        let plugin = prefix[0]
        var paths: [String] = []
        for index in 0..<2 {
            _ = try archive(fixture, "c\(index)", size: 3 << 20, seed: UInt64(20 + index))
            paths.append(fixture.root + "/c\(index).pax")
        }
        let processes: [Process] = try (0..<2).map { index in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let request = "{\"name\":\"c\(index)\",\"datasource\":\"d\(index)\",\"rp\":\"r\(index)\",\"time\":\"2026-12-01T00:00:00Z\",\"retention_days\":30}"
            process.arguments = ["-c", "'\(binary)' '\(plugin)' '\(fixture.state)' 10 store '\(request)' < '\(paths[index])' > '\(fixture.root)/out\(index)' 2>&1"]
            try process.run()
            return process
        }
        for process in processes { process.waitUntilExit(); XCTAssertEqual(process.terminationStatus, 0) }
        let outputs = try (0..<2).map { try String(contentsOfFile: fixture.root + "/out\($0)", encoding: .utf8) }
        XCTAssertTrue(outputs.joined().contains("A00001L8 file 1") && outputs.joined().contains("A00002L8 file 1"), outputs.joined())
        for index in 0..<2 {
            XCTAssertEqual(try fixture.read("c\(index)"), [UInt8](try Data(contentsOf: URL(fileURLWithPath: paths[index]))))
        }
    }

    func testRecatalogScansVolumesWhenTheCatalogFileIsMissing() throws {
        let fixture = try TapeFixture(self, barcodes: ["A00001L8"])
        let first = try archive(fixture, "m1", size: 300_000, seed: 3)
        let second = try archive(fixture, "m2", size: 300_000, seed: 4)
        try fixture.store(TapeFixture.request("m1", pool: "p", days: 3650, colocate: true), first)
        try fixture.store(TapeFixture.request("m2", pool: "p", days: 3650, colocate: true), second)
        // Drop the last catalog (file 4), as if the session had been killed before writing it.
        let library = try VirtualLibrary(directory: fixture.vtl)
        let cartridge = try library.cartridge("A00001L8")
        try cartridge.truncate(at: try XCTUnwrap(cartridge.firstBlock(ofFile: 4)))
        let fresh = try TapeContext(stateDirectory: fixture.root + "/fresh", waitSeconds: 1)
        _ = try TapeCommands.run(CommandRequest(verb: "library.add", args: TapeFixture.json(["name": "lib1", "kind": "vtl", "dir": fixture.vtl])), context: fresh)
        let found = try TapeCommands.run(CommandRequest(verb: "tape.recatalog", args: TapeFixture.json(["barcode": "A00001L8"])), context: fresh)
        XCTAssertEqual(Set(found["archives"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []), ["m1", "m2"])
        let listed = try TapeLibraryProvider.list(ArchiveFilter(), context: fresh).archives
        XCTAssertEqual(listed.first { $0.name == "m2" }?.bytes, UInt64(second.count), "bytes counted by reading the volume")
    }
}
