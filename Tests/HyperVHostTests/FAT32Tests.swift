import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

private typealias MemoryBlockSource = FileSystemTesting.MemoryBlockSource

/// FAT32 images made by mkfs.vfat + mcopy from a known tree, compared entry by entry and byte
/// by byte; long-name checksums; chain loops; damaged input; a fuzz run.
final class FAT32Tests: XCTestCase {
    private static let mtoolsEnvironment = ["TZ": "UTC", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"]

    private func makeTree(_ root: String, manyFiles: Int, bigSize: Int) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/nested/a/b/c", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/many", withIntermediateDirectories: true)
        try FileSystemTesting.write(Array("deep\n".utf8), root + "/nested/a/b/c/deep.txt")
        try FileSystemTesting.write(Array("read me\n".utf8), root + "/Read Me First.txt")
        try FileSystemTesting.write(Array("upper\n".utf8), root + "/UPPER.TXT")
        try FileSystemTesting.write(Array("lower\n".utf8), root + "/lower.txt")
        try FileSystemTesting.write([], root + "/empty one")
        try FileSystemTesting.write([], root + "/empty two")
        for name in ["héllo wörld ✓.txt", "日本語ファイル.txt", "Mixed Case Name With Spaces.document",
                     String(repeating: "Long", count: 50) + ".txt"] {
            try FileSystemTesting.write(Array(name.utf8), root + "/nested/" + name)
        }
        try FileSystemTesting.write(TestData.random(bigSize, seed: 7), root + "/big.bin")
        for index in 0..<manyFiles {
            try FileSystemTesting.write(Array("file \(index)\n".utf8), root + "/many/" + String(format: "File %03d.txt", index))
        }
        var next = 1_600_000_000
        func visit(_ path: String) {
            for name in (try? fm.contentsOfDirectory(atPath: path))?.sorted() ?? [] {
                var info = stat()
                lstat(path + "/" + name, &info)
                if info.st_mode & S_IFMT == S_IFDIR { visit(path + "/" + name) }
                next += 3601
                FileSystemTesting.setTimes(path + "/" + name, seconds: next)
            }
        }
        visit(root)
    }

    /// mkfs.vfat -F 32 + mcopy -s -m of the tree's content.
    private func makeImage(_ directory: String, tree: String, kilobytes: Int) throws -> String {
        for tool in ["mkfs.vfat", "mcopy"] { try TestSupport.require(tool) }
        let image = directory + "/fat-\(UUID().uuidString.prefix(6)).img"
        try FileSystemTesting.run(["mkfs.vfat", "-F", "32", "-n", "TESTVOL", "-i", "12345678", "-C", image, String(kilobytes)])
        let items = try FileManager.default.contentsOfDirectory(atPath: tree).sorted().map { tree + "/" + $0 }
        try FileSystemTesting.run(["mcopy", "-s", "-m", "-i", image] + items + ["::/"], environment: Self.mtoolsEnvironment)
        return image
    }

    func testFAT32TreeMatchesSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try makeTree(tree, manyFiles: 500, bigSize: 10 << 20)
        let image = try makeImage(directory, tree: tree, kilobytes: 262_144)
        let volume = try FileSystemTesting.open(image)
        XCTAssertTrue(FAT32FileSystem.probe(volume))
        XCTAssertFalse(Ext4FileSystem.probe(volume))
        XCTAssertEqual(try PartitionTable.read(volume), [])
        let fs = try FAT32FileSystem(volume: volume)
        XCTAssertEqual(fs.type, "fat32")
        XCTAssertEqual(fs.label, "TESTVOL")
        try FileSystemTesting.assertMatches(fs, tree: tree, options: .init(posix: false, timeTolerance: 2, directoryTimes: false))

        // Case-insensitive lookup by long or short name.
        let readMe = try fs.entry(["Read Me First.txt"])
        XCTAssertEqual(try fs.entry(["READ ME FIRST.TXT"]).identifier, readMe.identifier)
        XCTAssertEqual(try fs.entry(["README~1.TXT"]).identifier, readMe.identifier)
        XCTAssertEqual(try fs.entry(["upper.txt"]).name, "UPPER.TXT")
        XCTAssertEqual(try fs.entry(["LOWER.TXT"]).name, "lower.txt")
        XCTAssertEqual(try fs.entry(["MANY", "file 123.TXT"]).name, "File 123.txt")
        XCTAssertThrowsError(try fs.entry(["nope"])) { XCTAssertEqual(($0 as? PluginError)?.code, .notFound) }
        XCTAssertThrowsError(try fs.list(["big.bin"])) { XCTAssertEqual(($0 as? PluginError)?.code, .invalid) }
        // Empty files have no cluster but distinct identifiers.
        let empties = try ["empty one", "empty two"].map { try fs.entry([$0]) }
        XCTAssertNotEqual(empties[0].identifier, empties[1].identifier)
        XCTAssertEqual(try fs.volumeExtents(of: empties[0]), [])

        // The big file's clusters, read straight from the volume, hold its content.
        let big = try fs.entry(["big.bin"])
        let extents = try fs.volumeExtents(of: big)
        XCTAssertEqual(extents.reduce(0) { $0 + $1.count }, Int(big.size.divideRoundingUp(fs.boot.clusterSize) * fs.boot.clusterSize))
        let first = try XCTUnwrap(extents.first)
        let raw = try volume.bytes(at: first.lowerBound, count: Int(min(first.upperBound - first.lowerBound, 1 << 20)))
        XCTAssertEqual(raw, Array(TestData.random(10 << 20, seed: 7).prefix(raw.count)))
        var part = [UInt8](repeating: 0, count: 1000)
        try part.withUnsafeMutableBytes { try fs.read(big, at: 5_000_000, into: $0) }
        XCTAssertEqual(part, Array(TestData.random(10 << 20, seed: 7)[5_000_000..<5_001_000]))
    }

    /// A small image for the damage tests (33 MiB: the smallest FAT32 with 512-byte clusters).
    private func smallImage(_ directory: String) throws -> (image: String, tree: String) {
        let tree = directory + "/small-tree"
        try makeTree(tree, manyFiles: 60, bigSize: 200_000)
        return (try makeImage(directory, tree: tree, kilobytes: 34_000), tree)
    }

    func testLongNameWithBadChecksumFallsBackToShortName() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let image = try smallImage(directory).image
        let source = MemoryBlockSource(try FileSystemTesting.load(image))
        let fs = try FAT32FileSystem(volume: source)
        var changed = 0
        for range in try fs.volumeExtents(of: try fs.entry([])) {
            for record in stride(from: Int(range.lowerBound), to: Int(range.upperBound), by: 32)
            where source.bytes[record + 11] == 0x0F && source.bytes.utf16(record + 1, 10, bigEndian: false) == "Read " {
                // Every part of this long name carries the same checksum.
                let checksum = source.bytes[record + 13]
                for other in stride(from: record, to: record + 32 * 3, by: 32) where source.bytes[other + 11] == 0x0F && source.bytes[other + 13] == checksum {
                    source.bytes[other + 13] = checksum &+ 1
                    changed += 1
                }
            }
        }
        XCTAssertGreaterThan(changed, 0)
        let names = try FAT32FileSystem(volume: source).list([]).map(\.name)
        XCTAssertTrue(names.contains("README~1.TXT"), "\(names)")
        XCTAssertFalse(names.contains("Read Me First.txt"))
    }

    func testClusterChainLoopIsAnError() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let image = try smallImage(directory).image
        let source = MemoryBlockSource(try FileSystemTesting.load(image))
        let fs = try FAT32FileSystem(volume: source)
        let big = try fs.entry(["big.bin"])
        let cluster = Int(big.identifier)
        source.bytes.putLE32(UInt32(cluster + 2), at: Int(fs.boot.fatOffset) + (cluster + 5) * 4)
        let damaged = try FAT32FileSystem(volume: source)
        var buffer = [UInt8](repeating: 0, count: 10)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try damaged.read(big, at: 0, into: $0) }) {
            XCTAssertEqual(($0 as? PluginError)?.code, .corrupt)
            XCTAssertTrue(($0 as? PluginError)?.message.contains("loops") ?? false, "\($0)")
        }
        XCTAssertThrowsError(try damaged.volumeExtents(of: big))
        // A chain that ends before the size is covered.
        source.bytes.putLE32(0x0FFF_FFFF, at: Int(fs.boot.fatOffset) + (cluster + 5) * 4)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try FAT32FileSystem(volume: source).read(big, at: 0, into: $0) }) {
            XCTAssertTrue(($0 as? PluginError)?.message.contains("chain ends after 6 clusters") ?? false, "\($0)")
        }
    }

    func testDamagedAndForeignVolumes() throws {
        let zeros = MemoryBlockSource([UInt8](repeating: 0, count: 1 << 20))
        XCTAssertFalse(FAT32FileSystem.probe(zeros))
        XCTAssertThrowsError(try FAT32FileSystem(volume: zeros)) { XCTAssertEqual(($0 as? PluginError)?.code, .corrupt) }
        let directory = try TestSupport.temporaryDirectory(self)
        try TestSupport.require("mkfs.vfat")
        try FileSystemTesting.run(["mkfs.vfat", "-F", "16", "-C", directory + "/fat16.img", "16384"])
        let fat16 = try FileSystemTesting.open(directory + "/fat16.img")
        XCTAssertFalse(FAT32FileSystem.probe(fat16))
        XCTAssertThrowsError(try FAT32FileSystem(volume: fat16)) { XCTAssertEqual(($0 as? PluginError)?.code, .unsupported) }
        let image = try FileSystemTesting.load(try smallImage(directory).image)
        XCTAssertThrowsError(try FAT32FileSystem(volume: MemoryBlockSource(Array(image.prefix(8 << 20))))) {
            XCTAssertTrue(($0 as? PluginError)?.message.contains("do not fit in the volume") ?? false, "\($0)")
        }
        var badRoot = image
        badRoot.putLE32(0x0FFF_FFF0, at: 0x2C)
        XCTAssertThrowsError(try FAT32FileSystem(volume: MemoryBlockSource(badRoot))) {
            XCTAssertTrue(($0 as? PluginError)?.message.contains("root directory cluster") ?? false, "\($0)")
        }
        XCTAssertEqual(FAT32Directory.codePage437High.count, 128)
        XCTAssertEqual(FAT32Directory.decodeOEM([0x80, 0x41, 0xE1]), "ÇAß")
        // 2021-03-03 05:05:14 UTC plus 1.5 s of creation-time hundredths.
        XCTAssertEqual(FAT32Directory.date(0x5263, 0x28A7, centiseconds: 150)?.timeIntervalSince1970, 1_614_747_914 + 1.5)
        XCTAssertNil(FAT32Directory.date(0, 0))
        XCTAssertNil(FAT32Directory.date(0x5263 & ~0x1E0, 0))  // month 0
    }

    /// FAT entries a damaged volume could hold, each with the error it must give.
    func testHostileChainsAreRefused() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let original = try FileSystemTesting.load(try smallImage(directory).image)
        let fs = try FAT32FileSystem(volume: MemoryBlockSource(original))
        let big = try fs.entry(["big.bin"])
        let entry = Int(fs.boot.fatOffset) + Int(big.identifier) * 4
        for (value, phrase) in [(UInt32(0), "links to a free cluster marker"), (1, "links to cluster 1"),
                                (0x0FFF_FFF7, "reaches bad cluster"), (UInt32(big.identifier), "loops"),
                                (0x0FFF_FFF0, "links to cluster 268435440")] {
            let source = MemoryBlockSource(original)
            source.bytes.putLE32(value, at: entry)
            XCTAssertThrowsError(try FileSystemTesting.content(try FAT32FileSystem(volume: source), big)) {
                XCTAssertEqual(($0 as? PluginError)?.code, .corrupt)
                XCTAssertTrue(($0 as? PluginError)?.message.contains(phrase) ?? false, "\($0)")
            }
        }
        // A subdirectory whose cluster is its parent's: paths through it stay finite.
        let source = MemoryBlockSource(original)
        let looped = try FAT32FileSystem(volume: source)
        let nested = try looped.entry(["nested"]), a = try looped.entry(["nested", "a"])
        for range in try looped.volumeExtents(of: nested) {
            for record in stride(from: Int(range.lowerBound), to: Int(range.upperBound), by: 32)
            where source.bytes.le16(record + 0x1A) == UInt16(a.identifier & 0xFFFF) && source.bytes[record + 11] & 0x10 != 0 {
                source.bytes.putLE16(UInt16(nested.identifier & 0xFFFF), at: record + 0x1A)
                source.bytes.putLE16(UInt16(nested.identifier >> 16), at: record + 0x14)
            }
        }
        let reopened = try FAT32FileSystem(volume: source)
        XCTAssertEqual(try reopened.list(["nested", "a", "a", "a", "a"]).map(\.name).sorted(),
                       try reopened.list(["nested"]).map(\.name).sorted())
    }

    /// ~1500 mutations of the boot sector, the FAT and directory clusters.
    func testFuzzFAT32() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let source = MemoryBlockSource(try FileSystemTesting.load(try smallImage(directory).image))
        let fs = try FAT32FileSystem(volume: source)
        let fat = Int(fs.boot.fatOffset)
        var regions: [Range<Int>] = [0..<0x5A, 510..<512, fat..<fat + 8192]
        for path in [[], ["many"], ["nested"], ["nested", "a"]] {
            regions += try fs.volumeExtents(of: try fs.entry(path)).prefix(4).map { Int($0.lowerBound)..<Int($0.upperBound) }
        }
        let runs = FileSystemTesting.fuzz(source, regions: regions, count: 1500, seconds: 7, seed: 31) { volume in
            guard FAT32FileSystem.probe(volume) else { return }
            try FileSystemTesting.exercise(try FAT32FileSystem(volume: volume))
        }
        XCTAssertGreaterThan(runs, 300)
    }
}
