import Foundation
import PluginAPI
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// GNU tar as the independent reader of what the provider writes.
final class TarOracleTests: XCTestCase {
    func chunks(_ count: Int, size: Int, seed: UInt64) -> [[UInt8]] {
        (0..<count).map { TestData.random(size, seed: seed + UInt64($0)) }
    }

    func testEveryTapeFileListsExtractsAndChunksMatchTheirNames() throws {
        try TestSupport.require("tar"); try TestSupport.require("zstd"); try TestSupport.require("sha256sum")
        let fixture = try TapeFixture(self)
        let stream = try HostArchive.make(root: fixture.root, rp: "20261204-aa01", chunks: chunks(5, size: 300_000, seed: 1))
        let description = try fixture.store(TapeFixture.request("point1"), stream)
        XCTAssertEqual(description.bytes, UInt64(stream.count))
        XCTAssertEqual(description.location, "A00001L8 file 1")
        XCTAssertEqual(try fixture.read("point1"), stream, "read returns exactly the bytes written")

        let map = try fixture.command("vtl.map", ["library": "lib1", "barcode": "A00001L8"])
        XCTAssertEqual(map["files"]?.arrayValue?.count, 3, "label, the volume, the catalog")
        for file in 0..<3 {
            let path = try fixture.export("A00001L8", file: file)
            let listing = try TestSupport.run(["tar", "-b", "512", "-tvf", path])
            XCTAssertEqual(listing.status, 0, "file \(file): \(listing.output)")
            XCTAssertFalse(listing.output.contains("Ignoring unknown"), listing.output)
            switch file {
            case 0:
                XCTAssertTrue(listing.output.contains("dpm-tape/label.json") && listing.output.contains("dpm-tape/README.txt"), listing.output)
            case 1:
                XCTAssertTrue(listing.output.contains("dpm/20261204-aa01/manifest.json"), listing.output)
                XCTAssertEqual(listing.output.components(separatedBy: ".zst").count - 1, 5, listing.output)
            default:
                XCTAssertTrue(listing.output.contains("dpm-tape/catalog.json"), listing.output)
            }
        }
        // Extract the volume and check every chunk: zstd decompresses it, SHA-256 is its name.
        let out = fixture.root + "/extract"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let extract = try TestSupport.run(["tar", "-b", "512", "-xf", try fixture.export("A00001L8", file: 1), "-C", out])
        XCTAssertEqual(extract.status, 0, extract.output)
        let chunkDirectory = out + "/dpm/20261204-aa01/chunks"
        let names = try FileManager.default.contentsOfDirectory(atPath: chunkDirectory)
        XCTAssertEqual(names.count, 5)
        for name in names {
            let plain = out + "/plain"
            XCTAssertEqual(try TestSupport.run(["zstd", "-q", "-d", "-f", chunkDirectory + "/" + name, "-o", plain]).status, 0)
            XCTAssertEqual(String(try TestSupport.run(["sha256sum", plain]).output.prefix(64)) + ".zst", name)
        }
        // The label describes the tape.
        let label = try TestSupport.run(["tar", "-b", "512", "-xOf", try fixture.export("A00001L8", file: 0), "dpm-tape/label.json"])
        let decoded = try JSONCoding.decode(TapeLabel.self, from: Data(label.output.utf8))
        XCTAssertEqual(decoded.barcode, "A00001L8")
        XCTAssertEqual(decoded.pool, "default")
        XCTAssertEqual(decoded.sequence, 1)
    }

    func testArchiveSpanningTwoTapesRestoresWithTarMultiVolume() throws {
        try TestSupport.require("tar"); try TestSupport.require("zstd")
        // 6 MiB cartridges with early warning 2 MiB before the end: about 4 MiB each.
        let fixture = try TapeFixture(self, capacity: "6M", earlyWarning: "2M")
        let big = TestData.random(5 << 20, seed: 42)
        let source = fixture.root + "/src/dpm/rp-span"
        try FileManager.default.createDirectory(atPath: source + "/chunks", withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: source + "/manifest.json"))
        try Data(big).write(to: URL(fileURLWithPath: source + "/chunks/" + String(repeating: "ab", count: 32) + ".zst"))
        try Data(TestData.random(100_000, seed: 7)).write(to: URL(fileURLWithPath: source + "/index.dpmidx"))
        let tarball = fixture.root + "/span.pax"
        XCTAssertEqual(try TestSupport.run(["tar", "--format=posix", "-cf", tarball, "-C", fixture.root + "/src", "dpm"]).status, 0)
        let stream = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tarball)))
        let description = try fixture.store(TapeFixture.request("spanned"), stream)
        XCTAssertEqual(description.volumes?.count, 2, description.location)
        XCTAssertTrue(description.location.contains("A00001L8 file 1") && description.location.contains("A00002L8 file 1"), description.location)
        XCTAssertEqual(try fixture.tapeState("A00001L8"), "full")
        XCTAssertEqual(try fixture.read("spanned"), stream, "read joins the volumes back into the original stream")

        let v1 = try fixture.export("A00001L8", file: 1)
        let v2 = try fixture.export("A00002L8", file: 1)
        let head = try TestSupport.run(["head", "-c", "2000", v2]).output
        XCTAssertTrue(head.contains("GNU.volume.filename=dpm/rp-span/chunks/"), "volume 2 starts with GNU's continuation headers")
        let out = fixture.root + "/restore"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let restore = try TestSupport.run(["tar", "-b", "512", "-M", "-x", "-f", v1, "-f", v2, "-C", out])
        XCTAssertEqual(restore.status, 0, restore.output)
        let restored = try Data(contentsOf: URL(fileURLWithPath: out + "/dpm/rp-span/chunks/" + String(repeating: "ab", count: 32) + ".zst"))
        XCTAssertEqual([UInt8](restored), big, "tar -M restores the member split across tapes")
        let index = try Data(contentsOf: URL(fileURLWithPath: out + "/dpm/rp-span/index.dpmidx"))
        XCTAssertEqual([UInt8](index), TestData.random(100_000, seed: 7))
    }
}
