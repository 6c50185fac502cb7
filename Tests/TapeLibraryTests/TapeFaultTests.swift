import Foundation
import Glibc
import PluginAPI
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// Faults and restores that must touch only what they need: medium errors, a writer killed
/// mid-file, reading one point of many, and recatalog on a fresh state directory.
final class TapeFaultTests: XCTestCase {
    func colocated(_ fixture: TapeFixture, count: Int, size: Int = 200_000) throws -> [(String, [UInt8])] {
        try (0..<count).map { index in
            let bytes = try HostArchive.make(root: fixture.root, rp: "p\(index)", chunks: [TestData.random(size, seed: UInt64(100 + index))])
            try fixture.store(TapeFixture.request("p\(index)", pool: "p", days: 3650, colocate: true), bytes)
            return ("p\(index)", bytes)
        }
    }

    func testReadErrorNamesTapeFileAndArchiveAndTheOthersStillRestore() throws {
        let fixture = try TapeFixture(self)
        let archives = try colocated(fixture, count: 3, size: 700_000)
        let map = try fixture.command("vtl.map", ["library": "lib1", "barcode": "A00001L8"])
        let file3 = try XCTUnwrap(map["files"]?.arrayValue?.first { $0["file"]?.numberValue == 3 })
        let block = Int(try XCTUnwrap(file3["first_block"]?.numberValue)) + 1
        try fixture.command("vtl.fault", ["library": "lib1", "barcode": "A00001L8", "read_error_at_block": block])
        XCTAssertThrowsError(try fixture.read("p1")) { error in
            let message = (error as? PluginError)?.message ?? "\(error)"
            XCTAssertEqual((error as? PluginError)?.code, .io)
            XCTAssertTrue(message.contains("tape A00001L8 file 3"), message)
            XCTAssertTrue(message.contains("archive p1"), message)
            XCTAssertTrue(message.contains("block \(block)"), message)
        }
        XCTAssertEqual(try fixture.read("p0"), archives[0].1)
        XCTAssertEqual(try fixture.read("p2"), archives[2].1)
        try fixture.command("vtl.fault", ["library": "lib1", "clear": true])
        XCTAssertEqual(try fixture.read("p1"), archives[1].1)
    }

    func testRestoringOnePointOfTenReadsOnlyItsFile() throws {
        let fixture = try TapeFixture(self)
        let archives = try colocated(fixture, count: 10)
        let before = try fixture.cartridge("A00001L8")
        XCTAssertEqual(try fixture.read("p6"), archives[6].1)
        let after = try fixture.cartridge("A00001L8")
        let read = (after["bytes_read"]?.numberValue ?? 0) - (before["bytes_read"]?.numberValue ?? 0)
        let total = Double(archives.reduce(0) { $0 + $1.1.count })
        XCTAssertGreaterThanOrEqual(read, Double(archives[6].1.count))
        XCTAssertLessThan(read, Double(archives[6].1.count) + 4 * Double(TapeFormat.recordSize), "only p6's file was read")
        XCTAssertLessThan(read, total / 4)
    }

    func testRecatalogOnAFreshStateDirectoryFindsThePointsAndOneRestores() throws {
        let fixture = try TapeFixture(self, capacity: "6M", earlyWarning: "2M")
        let small = try HostArchive.make(root: fixture.root, rp: "s", chunks: [TestData.random(100_000, seed: 5)])
        try fixture.store(TapeFixture.request("small", pool: "p", days: 3650, colocate: true), small)
        let large = try HostArchive.make(root: fixture.root, rp: "l", chunks: [TestData.random(3 << 20, seed: 6), TestData.random(2 << 20, seed: 7)])
        let spanned = try fixture.store(TapeFixture.request("large", pool: "p", days: 3650, colocate: true), large)
        XCTAssertEqual(spanned.volumes?.count, 2, spanned.location)

        let fresh = try TapeContext(stateDirectory: fixture.root + "/fresh", waitSeconds: 1)
        func run(_ verb: String, _ args: [String: Any]) throws -> JSONValue {
            try TapeCommands.run(CommandRequest(verb: verb, args: TapeFixture.json(args)), context: fresh)
        }
        _ = try run("library.add", ["name": "lib1", "kind": "vtl", "dir": fixture.vtl])
        let first = try run("tape.recatalog", ["barcode": "A00001L8"])
        XCTAssertEqual(first["archives"]?.arrayValue?.compactMap { $0["name"]?.stringValue }, ["small"])
        XCTAssertEqual(first["incomplete"], .array([.string("large")]), "large continues on another tape")
        let second = try run("tape.recatalog", ["barcode": "A00002L8"])
        XCTAssertEqual(second["archives"]?.arrayValue?.compactMap { $0["name"]?.stringValue }, ["large"])
        let listed = try TapeLibraryProvider.list(ArchiveFilter(), context: fresh).archives
        XCTAssertEqual(Set(listed.map(\.name)), ["small", "large"])
        let large2 = try XCTUnwrap(listed.first { $0.name == "large" })
        XCTAssertEqual(large2.bytes, UInt64(large.count))
        XCTAssertEqual(large2.datasourceName, "vm large")
        XCTAssertEqual(large2.summary, .object(["kind": .string("full")]))
        XCTAssertEqual(try TapeFixture.read("large", context: fresh), large, "a recataloged point restores byte for byte across its two tapes")
    }

    // MARK: Through the C ABI, one process per call

    func testWriterKilledMidFileLeavesTheTapeAppendableAndNothingHalfWrittenListed() throws {
        let fixture = try TapeFixture(self)
        let (binary, prefix) = try fixture.compileHost()
        func request(_ name: String) -> String {
            "{\"name\":\"\(name)\",\"datasource\":\"ds\",\"rp\":\"\(name)\",\"time\":\"2026-12-01T00:00:00Z\",\"retention_days\":3650,\"pool\":\"p\",\"colocate\":true}"
        }
        let first = try HostArchive.make(root: fixture.root, rp: "k1", chunks: [TestData.random(300_000, seed: 11)])
        let firstPath = fixture.root + "/k1.pax"
        let stored = try runProcess(["/bin/sh", "-c", "'\(binary)' '\(prefix.joined(separator: "' '"))' store '\(request("k1"))' < '\(firstPath)'"])
        XCTAssertEqual(stored.status, 0, stored.stderr)
        XCTAssertTrue(stored.stdout.contains("\"location\":\"A00001L8 file 1\""), stored.stdout)

        // The second writer is killed after a few MiB reached the tape.
        let victim = Process()
        victim.executableURL = URL(fileURLWithPath: binary)
        victim.arguments = prefix + ["store", request("k2")]
        let input = Pipe()
        victim.standardInput = input
        victim.standardOutput = FileHandle.nullDevice
        victim.standardError = FileHandle.nullDevice
        try victim.run()
        let data = TestData.random(4 << 20, seed: 12)
        var header = TarHeader(name: "dpm/k2/chunks/big.zst", size: 64 << 20, typeflag: UInt8(ascii: "0")).encoded()
        header += data
        try input.fileHandleForWriting.write(contentsOf: Data(header))
        var blocks = 0.0
        for _ in 0..<200 {
            blocks = try fixture.command("vtl.map", ["library": "lib1", "barcode": "A00001L8"])["blocks"]?.numberValue ?? 0
            if blocks > 12 { break }
            usleep(50_000)
        }
        XCTAssertGreaterThan(blocks, 12, "the victim wrote records of its file")
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        try? input.fileHandleForWriting.close()

        let listed = try runProcess([binary] + prefix + ["list"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("\"k1\""), listed.stdout)
        XCTAssertFalse(listed.stdout.contains("k2"), "no half-written archive is listed: \(listed.stdout)")

        let third = try HostArchive.make(root: fixture.root, rp: "k3", chunks: [TestData.random(200_000, seed: 13)])
        let thirdPath = fixture.root + "/k3.pax"
        let appended = try runProcess(["/bin/sh", "-c", "'\(binary)' '\(prefix.joined(separator: "' '"))' store '\(request("k3"))' < '\(thirdPath)'"])
        XCTAssertEqual(appended.status, 0, appended.stderr)
        XCTAssertTrue(appended.stdout.contains("\"location\":\"A00001L8 file 3\""), "appended after the last complete file, over the partial one: \(appended.stdout)")
        let back = try runProcess(["/bin/sh", "-c", "'\(binary)' '\(prefix.joined(separator: "' '"))' read k3 | cmp - '\(thirdPath)'"])
        XCTAssertEqual(back.status, 0, back.stdout + back.stderr)
        let back1 = try runProcess(["/bin/sh", "-c", "'\(binary)' '\(prefix.joined(separator: "' '"))' read k1 | cmp - '\(firstPath)'"])
        XCTAssertEqual(back1.status, 0, back1.stdout + back1.stderr)
        let map = try fixture.command("vtl.map", ["library": "lib1", "barcode": "A00001L8"])
        XCTAssertEqual(map["files"]?.arrayValue?.count, 5, "label, k1, catalog, k3, catalog: the partial file is gone")
        XCTAssertEqual(first, [UInt8](try Data(contentsOf: URL(fileURLWithPath: firstPath))))
        XCTAssertEqual(third, [UInt8](try Data(contentsOf: URL(fileURLWithPath: thirdPath))))
    }
}
