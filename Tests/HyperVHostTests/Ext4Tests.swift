import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

private typealias MemoryBlockSource = FileSystemTesting.MemoryBlockSource

/// ext4 (and ext2/ext3) images made by mkfs.ext4 -d from a known tree, compared entry by entry
/// and byte by byte with the tree and with debugfs; refusals; damaged input; a fuzz run.
final class Ext4Tests: XCTestCase {
    private static let fakeTime = ["E2FSPROGS_FAKE_TIME": "1700000000"]

    // MARK: - Source trees

    /// Builds the test tree. `full` adds the 3000-file directory and the deep extent tree.
    private func makeTree(_ root: String, full: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/nested/a/b/c", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/stickydir", withIntermediateDirectories: true)
        try FileSystemTesting.write(Array("deep\n".utf8), root + "/nested/a/b/c/deep.txt")
        try FileSystemTesting.write([], root + "/empty")
        try FileSystemTesting.write(Array("hello\n".utf8), root + "/small.txt")
        try FileSystemTesting.write(TestData.random(20 << 20, seed: 1), root + "/big.bin")
        try writeSparse(root + "/sparse.bin", size: 12 << 20, pieces: [(0, 4096), (5 << 20, 65536), ((12 << 20) - 4096, 4096)], seed: 2)
        if full {
            // 400 one-block islands: 400 extents, a tree of depth 2 with 1 KiB blocks.
            try writeSparse(root + "/fragmented.bin", size: 400 * 16384, pieces: (0..<400).map { ($0 * 16384, 1024) }, seed: 3)
            try fm.createDirectory(atPath: root + "/many", withIntermediateDirectories: true)
            for index in 0..<3000 {
                try FileSystemTesting.write(Array("file \(index)\n".utf8), root + "/many/" + String(format: "f%04d.txt", index))
            }
        }
        for name in [String(repeating: "n", count: 255), "héllo wörld ✓.txt", "日本語.txt", String(repeating: "日", count: 85), "📦 box.bin"] {
            try FileSystemTesting.write(Array(name.utf8.prefix(100)), root + "/nested/" + name)
        }
        try fm.createSymbolicLink(atPath: root + "/link-short", withDestinationPath: "small.txt")
        try fm.createSymbolicLink(atPath: root + "/nested/link-long", withDestinationPath: String(repeating: "long/", count: 40) + "target")
        XCTAssertEqual(link(root + "/small.txt", root + "/hard.txt"), 0)
        XCTAssertEqual(link(root + "/small.txt", root + "/nested/a/hard2.txt"), 0)
        XCTAssertEqual(mkfifo(root + "/pipe", 0o640), 0)
        for (name, mode) in [("script.sh", 0o755), ("secret", 0o600), ("setuid", 0o4755), ("readonly", 0o444)] {
            try FileSystemTesting.write(Array("#!/bin/sh\n".utf8), root + "/" + name)
            XCTAssertEqual(chmod(root + "/" + name, mode_t(mode)), 0)
        }
        XCTAssertEqual(chmod(root + "/stickydir", 0o1777), 0)
        try FileSystemTesting.write(Array("owned\n".utf8), root + "/owned")
        try FileSystemTesting.write(Array("ids\n".utf8), root + "/bigids")
        XCTAssertEqual(chown(root + "/owned", 1000, 1000), 0)
        XCTAssertEqual(chown(root + "/bigids", 100_000, 200_000), 0)
        setTimes(root, seconds: 1_600_000_000)
    }

    /// A sparse file: zeros except `pieces` (offset, length) of random data.
    private func writeSparse(_ path: String, size: Int, pieces: [(Int, Int)], seed: UInt64) throws {
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        for (index, piece) in pieces.enumerated() {
            try TestData.write(TestData.random(piece.1, seed: seed &* 1000 &+ UInt64(index)), to: path, at: UInt64(piece.0))
        }
        XCTAssertEqual(truncate(path, off_t(size)), 0)
    }

    /// Gives every entry its own mtime (children before their directory).
    private func setTimes(_ directory: String, seconds: Int) {
        var next = seconds
        func visit(_ path: String) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted() ?? [] {
                let child = path + "/" + name
                var info = stat()
                lstat(child, &info)
                if info.st_mode & S_IFMT == S_IFDIR { visit(child) }
                next += 1000
                FileSystemTesting.setTimes(child, seconds: next, nanoseconds: 500_000_000)
            }
        }
        visit(directory)
    }

    /// mkfs.ext4 -d TREE with extra options; returns the image path.
    private func makeImage(_ directory: String, tree: String, options: [String], size: String = "256M") throws -> String {
        try TestSupport.require("mkfs.ext4")
        let image = directory + "/fs-\(UUID().uuidString.prefix(6)).img"
        try FileSystemTesting.run(["mkfs.ext4", "-q", "-F"] + options + ["-d", tree, image, size], environment: Self.fakeTime)
        return image
    }

    // MARK: - debugfs

    private func debugfs(_ image: String, _ command: String, write: Bool = false) throws -> String {
        try TestSupport.require("debugfs")
        return try FileSystemTesting.run(["debugfs"] + (write ? ["-w"] : []) + ["-R", command, image])
    }

    /// Selected fields of `debugfs -R 'stat PATH'`.
    private func debugfsStat(_ image: String, _ path: String) throws -> [String: String] {
        let text = try debugfs(image, "stat \"\(path)\"")
        var fields: [String: String] = [:]
        let regex = try NSRegularExpression(pattern: "(Inode|Mode|User|Group|Size|Flags|mtime|crtime|atime|ctime):\\s+(\\S+)")
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let key = String(text[Range(match.range(at: 1), in: text)!])
            if fields[key] == nil { fields[key] = String(text[Range(match.range(at: 2), in: text)!]) }
        }
        return fields
    }

    /// Decodes debugfs's "0xSECONDS:EXTRA" time.
    private func debugfsTime(_ text: String?) -> Double? {
        guard let parts = text?.split(separator: ":"), parts.count == 2,
              let low = UInt32(parts[0].dropFirst(2), radix: 16), let extra = UInt32(parts[1], radix: 16) else { return nil }
        return Double(Int64(Int32(bitPattern: low)) + Int64(extra & 3) << 32) + Double(extra >> 2) / 1e9
    }

    /// The data blocks debugfs lists for a file ("(0-11):562-573, (IND):574, …" or
    /// "(ETB0):…, (0):1174, (1-20[u]):1175-1194"), without the indirect and extent-tree blocks,
    /// as merged byte ranges.
    private func debugfsExtents(_ image: String, _ path: String, blockSize: UInt64) throws -> [Range<UInt64>] {
        let text = try debugfs(image, "stat \"\(path)\"")
        guard let start = text.range(of: "EXTENTS:\n") ?? text.range(of: "BLOCKS:\n") else { return [] }
        var ranges: [Range<UInt64>] = []
        for token in text[start.upperBound...].prefix(while: { $0 != "\n" }).components(separatedBy: ", ") {
            let parts = token.split(separator: ":")
            guard parts.count == 2, parts[0].dropFirst().first?.isNumber == true else { continue }
            let bounds = parts[1].split(separator: "-").compactMap { UInt64($0) }
            guard let first = bounds.first else { continue }
            ranges.append(first * blockSize..<((bounds.last ?? first) + 1) * blockSize)
        }
        var merged: [Range<UInt64>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, last.upperBound == range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<range.upperBound
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    private func assertAgreesWithDebugfs(_ fs: Ext4FileSystem, image: String, _ path: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let entry = try fs.entry(path)
        let stat = try debugfsStat(image, "/" + path.joined(separator: "/"))
        XCTAssertEqual(stat["Inode"].flatMap { UInt64($0) }, entry.identifier, "inode of \(path)", file: file, line: line)
        XCTAssertEqual(stat["Mode"].flatMap { UInt32($0, radix: 8) }, entry.mode, "mode of \(path)", file: file, line: line)
        XCTAssertEqual(stat["User"].flatMap { UInt32($0) }, entry.uid, "uid of \(path)", file: file, line: line)
        XCTAssertEqual(stat["Group"].flatMap { UInt32($0) }, entry.gid, "gid of \(path)", file: file, line: line)
        XCTAssertEqual(stat["Size"].flatMap { UInt64($0) }, entry.size, "size of \(path)", file: file, line: line)
        for (key, date) in [("mtime", entry.modified), ("atime", entry.accessed), ("ctime", entry.changed), ("crtime", entry.created)] {
            let expected = try XCTUnwrap(debugfsTime(stat[key]), "\(key) of \(path)", file: file, line: line)
            XCTAssertEqual(date?.timeIntervalSince1970 ?? -1, expected, accuracy: 1e-6, "\(key) of \(path)", file: file, line: line)
        }
    }

    // MARK: - Trees

    /// The brief's image: 256 MiB (1 KiB blocks, 64-bit, metadata_csum), hashed directories
    /// (e2fsck -D), unwritten extents (debugfs fallocate) and extended times (debugfs sif).
    func testExt4TreeMatchesSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try makeTree(tree, full: true)
        let image = try makeImage(directory, tree: tree, options: [])
        try TestSupport.require("e2fsck")
        _ = try runProcess(["e2fsck", "-fyD", image])  // exit status 1: "file system modified"
        XCTAssertTrue(try debugfsStat(image, "/many")["Flags"].flatMap { UInt32($0.dropFirst(2), radix: 16) }.map { $0 & 0x1000 != 0 } ?? false, "the 3000-file directory is hashed")
        // Unwritten extents over the holes of sparse.bin (content unchanged: they read as zeros).
        try debugfs(image, "fallocate /sparse.bin 0 12287", write: true)
        XCTAssertTrue(try debugfs(image, "ex /sparse.bin").contains("Uninit"))
        // Nanoseconds, and epoch bits that move times past 2038.
        try debugfs(image, "sif /small.txt crtime_extra 0x1d6f3455", write: true)
        try debugfs(image, "sif /stickydir mtime_extra 0x00000ff9", write: true)

        let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
        XCTAssertEqual(fs.type, "ext4")
        XCTAssertFalse(fs.needsJournalRecovery)
        XCTAssertEqual(fs.volume.blockSize, 1024)
        XCTAssertTrue(fs.volume.superblock.is64Bit)
        var options = FileSystemTesting.Options()
        options.directoryTimes = false  // e2fsck -D and mkfs touch directories
        try FileSystemTesting.assertMatches(fs, tree: tree, options: options)

        let fragmented = try fs.volume.inode(UInt32(try fs.entry(["fragmented.bin"]).identifier))
        XCTAssertEqual(fragmented.blockArea.le16(6), 2, "extent tree depth")
        for path in [["big.bin"], ["many", "f1234.txt"], ["bigids"], ["small.txt"], ["nested", "link-long"], ["pipe"], ["stickydir"], ["fragmented.bin"]] {
            try assertAgreesWithDebugfs(fs, image: image, path)
        }
        let created = try XCTUnwrap(fs.entry(["small.txt"]).created).timeIntervalSince1970
        XCTAssertEqual(created, 0x6553_F100 + 4_294_967_296 + 0.123456789, accuracy: 1e-6)
        let sticky = try XCTUnwrap(fs.entry(["stickydir"]).modified).timeIntervalSince1970
        XCTAssertEqual(sticky, Double(try debugfsStat(image, "/stickydir")["mtime"].flatMap { Int($0.dropFirst(2).prefix(8), radix: 16) } ?? 0) + 4_294_967_296 + 1022e-9, accuracy: 1e-6)
        XCTAssertEqual(try fs.entry(["hard.txt"]).identifier, try fs.entry(["nested", "a", "hard2.txt"]).identifier)
        XCTAssertEqual(try fs.entry(["nested", "link-long"]).linkTarget?.utf8.count, 206)
        for name in ["big.bin", "fragmented.bin", "sparse.bin"] {
            XCTAssertEqual(try fs.volumeExtents(of: try fs.entry([name])), try debugfsExtents(image, "/" + name, blockSize: 1024), name)
        }
        XCTAssertEqual(try fs.volumeExtents(of: try fs.entry(["link-short"])), [])
        // Lookups: exact names only, with clear errors.
        XCTAssertThrowsError(try fs.entry(["SMALL.TXT"])) { XCTAssertEqual(($0 as? PluginError)?.code, .notFound) }
        XCTAssertThrowsError(try fs.list(["small.txt"])) { XCTAssertEqual(($0 as? PluginError)?.code, .invalid) }
        XCTAssertThrowsError(try fs.entry(["small.txt", "x"])) { XCTAssertEqual(($0 as? PluginError)?.code, .invalid) }
        var buffer = [UInt8](repeating: 0, count: 10)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try fs.read(try fs.entry(["small.txt"]), at: 0, into: $0) })
        // Partial reads across block and extent boundaries.
        let big = try fs.entry(["big.bin"])
        let expected = TestData.random(20 << 20, seed: 1)
        for (offset, count) in [(1023, 2), (5_000_000, 300_000), ((20 << 20) - 7, 7)] {
            var part = [UInt8](repeating: 0, count: count)
            try part.withUnsafeMutableBytes { try fs.read(big, at: UInt64(offset), into: $0) }
            XCTAssertEqual(part, Array(expected[offset..<offset + count]))
        }
    }

    /// ext2 with 1 KiB blocks: block maps with single, double and triple indirect blocks.
    func testExt2BlockMapsMatchSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try makeTree(tree, full: false)
        // Data beyond 12 + 256 + 65536 blocks sits behind the triple-indirect block.
        try writeSparse(tree + "/far.bin", size: 70 << 20, pieces: [(0, 1000), ((70 << 20) - 5000, 5000)], seed: 9)
        setTimes(tree, seconds: 1_600_000_000)
        let image = try makeImage(directory, tree: tree, options: ["-t", "ext2", "-b", "1024"])
        let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
        XCTAssertFalse(try fs.volume.inode(UInt32(fs.entry(["far.bin"]).identifier)).usesExtents)
        try FileSystemTesting.assertMatches(fs, tree: tree)
        for name in ["big.bin", "far.bin"] {
            XCTAssertEqual(try fs.volumeExtents(of: try fs.entry([name])), try debugfsExtents(image, "/" + name, blockSize: 1024), name)
        }
    }

    /// ext3 with 4 KiB blocks: block maps and a journal.
    func testExt3MatchesSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try makeTree(tree, full: false)
        let image = try makeImage(directory, tree: tree, options: ["-t", "ext3", "-b", "4096"])
        let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
        XCTAssertEqual(fs.volume.blockSize, 4096)
        try FileSystemTesting.assertMatches(fs, tree: tree)
        try assertAgreesWithDebugfs(fs, image: image, ["big.bin"])
    }

    /// Layout variants: meta_bg with inodes spread over many groups, bigalloc, 128-byte inodes
    /// (no extra times), 64 KiB blocks, no filetype in directory records, 32-bit descriptors.
    func testFeatureVariantsMatchSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/d1/d2", withIntermediateDirectories: true)
        for index in 0..<150 {
            try FileSystemTesting.write(TestData.random(index * 37, seed: UInt64(index)), tree + (index % 3 == 0 ? "/d1/" : "/d1/d2/") + "file-\(index)")
        }
        try FileSystemTesting.write(TestData.random(300_000, seed: 99), tree + "/medium.bin")
        try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: "d1/d2/file-1")
        setTimes(tree, seconds: 1_500_000_000)
        let variants: [(options: [String], size: String, check: (Ext4FileSystem) -> Void)] = [
            (["-b", "1024", "-O", "meta_bg,^resize_inode", "-N", "256"], "256M", { fs in
                XCTAssertTrue(fs.volume.superblock.hasMetaBlockGroups)
                // Some inodes live in groups whose descriptors are in the second meta group.
                let highest = (try? FileSystemTesting.walk(fs).values.map(\.identifier).max()) ?? 0
                XCTAssertGreaterThan(highest ?? 0, UInt64(fs.volume.superblock.descriptorsPerBlock) * UInt64(fs.volume.superblock.inodesPerGroup))
            }),
            (["-b", "4096", "-O", "bigalloc", "-C", "16384"], "64M", { XCTAssertNotEqual($0.volume.superblock.roCompat & 0x200, 0) }),
            (["-I", "128"], "16M", { XCTAssertNil(try? $0.entry(["medium.bin"]).created) }),
            (["-b", "65536"], "64M", { XCTAssertEqual($0.volume.blockSize, 65536) }),
            (["-t", "ext2", "-O", "^filetype"], "16M", { XCTAssertFalse($0.volume.superblock.hasFileType) }),
            (["-O", "^64bit,^metadata_csum"], "16M", { XCTAssertEqual($0.volume.superblock.descriptorSize, 32) }),
        ]
        for variant in variants {
            let image = try makeImage(directory, tree: tree, options: variant.options, size: variant.size)
            let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
            variant.check(fs)
            try FileSystemTesting.assertMatches(fs, tree: tree, options: .init(posix: true, timeTolerance: 1, directoryTimes: false))
            try FileManager.default.removeItem(atPath: image)
        }
    }

    /// Inline data: small files and directories stored inside their inodes.
    func testInlineDataMatchesSource() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/tiny/dir", withIntermediateDirectories: true)
        try FileSystemTesting.write(Array("x".utf8), tree + "/tiny/one")
        try FileSystemTesting.write(TestData.random(50, seed: 1), tree + "/tiny/fifty")
        try FileSystemTesting.write(TestData.random(120, seed: 2), tree + "/tiny/dir/hundred-twenty")
        try FileSystemTesting.write(TestData.random(5000, seed: 3), tree + "/tiny/large")
        try FileManager.default.createSymbolicLink(atPath: tree + "/tiny/link", withDestinationPath: String(repeating: "x/", count: 40))
        setTimes(tree, seconds: 1_650_000_000)
        let image = try makeImage(directory, tree: tree, options: ["-O", "inline_data"], size: "16M")
        let inline = { (path: String) in try self.debugfsStat(image, path)["Flags"].flatMap { UInt32($0.dropFirst(2), radix: 16) }.map { $0 & 0x1000_0000 != 0 } ?? false }
        XCTAssertTrue(try inline("/tiny/fifty"))
        XCTAssertTrue(try inline("/tiny/dir/hundred-twenty"), "120 bytes: i_block plus system.data")
        XCTAssertTrue(try inline("/tiny/dir"))
        let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
        try FileSystemTesting.assertMatches(fs, tree: tree, options: .init(posix: true, timeTolerance: 1, directoryTimes: false))
        XCTAssertEqual(try fs.volumeExtents(of: try fs.entry(["tiny", "fifty"])), [])
    }

    // MARK: - Refusals, damage, fuzzing

    /// An 8 MiB image with 1 KiB blocks: a hashed directory, a depth-1 extent tree, symlinks.
    private func smallImage(_ directory: String, options: [String] = []) throws -> String {
        let tree = directory + "/small-tree-\(UUID().uuidString.prefix(4))"
        try FileManager.default.createDirectory(atPath: tree + "/dir/sub", withIntermediateDirectories: true)
        for index in 0..<150 { try FileSystemTesting.write(Array("\(index)".utf8), tree + "/dir/entry-\(index)") }
        try FileSystemTesting.write(TestData.random(200_000, seed: 4), tree + "/dir/sub/medium.bin")
        try FileSystemTesting.write(Array("small\n".utf8), tree + "/small")
        try writeSparse(tree + "/frag.bin", size: 30 * 8192, pieces: (0..<30).map { ($0 * 8192, 1024) }, seed: 5)
        try FileManager.default.createSymbolicLink(atPath: tree + "/short", withDestinationPath: "small")
        try FileManager.default.createSymbolicLink(atPath: tree + "/long", withDestinationPath: String(repeating: "l/", count: 50))
        // A fixed UUID and hash seed make the image, and so the fuzz runs, reproducible.
        let fixed = ["-U", "6f1c0a52-3c1e-4c43-9b55-0d5a3c1e4c43", "-E", "hash_seed=0b1c0a52-3c1e-4c43-9b55-0d5a3c1e4c43"]
        let image = try makeImage(directory, tree: tree, options: ["-b", "1024"] + fixed + options, size: "8M")
        if TestSupport.which("e2fsck") != nil { _ = try runProcess(["e2fsck", "-fyD", image]) }
        return image
    }

    /// Volume byte offset of inode `number`.
    private func inodeOffset(_ fs: Ext4FileSystem, _ number: UInt64) throws -> Int {
        let perGroup = UInt64(fs.volume.superblock.inodesPerGroup)
        let table = try fs.volume.inodeTable(group: (number - 1) / perGroup)
        return Int(table) * fs.volume.blockSize + Int((number - 1) % perGroup) * fs.volume.superblock.inodeSize
    }

    func testRefusesWhatItDoesNotSupport() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let image = try smallImage(directory)
        let original = try FileSystemTesting.load(image)
        for (bit, phrase) in [(UInt32(0x1), "compression"), (0x1000, "dirdata"), (0x8000_0000, "unknown bits 0x80000000"), (0x8, "journal device")] {
            var bytes = original
            bytes.putLE32(bytes.le32(1024 + 0x60) | bit, at: 1024 + 0x60)
            XCTAssertThrowsError(try Ext4FileSystem(volume: MemoryBlockSource(bytes))) { error in
                XCTAssertEqual((error as? PluginError)?.code, .unsupported)
                XCTAssertTrue((error as? PluginError)?.message.contains(phrase) ?? false, "\(error)")
            }
        }
        var recovering = original
        recovering.putLE32(recovering.le32(1024 + 0x60) | 0x4, at: 1024 + 0x60)
        XCTAssertTrue(try Ext4FileSystem(volume: MemoryBlockSource(recovering)).needsJournalRecovery)

        // fscrypt: an encrypted directory cannot be listed; an encrypted file is unreadable.
        for path in ["/dir", "/small"] {
            let flags = try XCTUnwrap(try debugfsStat(image, path)["Flags"].flatMap { UInt32($0.dropFirst(2), radix: 16) })
            try debugfs(image, "sif \(path) flags 0x\(String(flags | 0x800, radix: 16))", write: true)
        }
        let fs = try Ext4FileSystem(volume: try FileSystemTesting.open(image))
        XCTAssertThrowsError(try fs.list(["dir"])) { error in
            XCTAssertEqual((error as? PluginError)?.code, .unsupported)
            XCTAssertTrue((error as? PluginError)?.message.contains("encrypted") ?? false)
        }
        let small = try fs.entry(["small"])
        XCTAssertNotNil(small.unreadable)
        var buffer = [UInt8](repeating: 0, count: 3)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try fs.read(small, at: 0, into: $0) }) {
            XCTAssertEqual(($0 as? PluginError)?.code, .unsupported)
        }
    }

    func testDamagedVolumesGiveClearErrors() throws {
        let zeros = MemoryBlockSource([UInt8](repeating: 0, count: 1 << 20))
        XCTAssertFalse(Ext4FileSystem.probe(zeros))
        XCTAssertThrowsError(try Ext4FileSystem(volume: zeros)) { XCTAssertEqual(($0 as? PluginError)?.code, .corrupt) }
        XCTAssertFalse(Ext4FileSystem.probe(MemoryBlockSource([1, 2, 3])))

        let directory = try TestSupport.temporaryDirectory(self)
        let original = try FileSystemTesting.load(try smallImage(directory))
        XCTAssertThrowsError(try Ext4FileSystem(volume: MemoryBlockSource(Array(original.prefix(1 << 20))))) {
            XCTAssertTrue(($0 as? PluginError)?.message.contains("do not fit in the volume") ?? false, "\($0)")
        }
        let clean = try Ext4FileSystem(volume: MemoryBlockSource(original))
        let frag = try clean.entry(["frag.bin"])
        let inode = try inodeOffset(clean, frag.identifier)
        XCTAssertEqual(original.le16(inode + 0x28 + 6), 1, "frag.bin has a depth-1 extent tree")

        // An extent tree deeper than ext4 allows.
        var deep = original
        deep.putLE16(9, at: inode + 0x28 + 6)
        let deepFS = try Ext4FileSystem(volume: MemoryBlockSource(deep))
        var buffer = [UInt8](repeating: 0, count: 100)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try deepFS.read(frag, at: 0, into: $0) }) {
            XCTAssertEqual(($0 as? PluginError)?.message, "ext4: inode \(frag.identifier): extent tree depth 9 exceeds 5 (the inode's root node)")
        }
        // A directory record with length 0.
        let dirBlock = Int(try XCTUnwrap(clean.volumeExtents(of: try clean.entry(["dir", "sub"])).first).lowerBound)
        var broken = original
        broken.putLE16(0, at: dirBlock + 4)
        XCTAssertThrowsError(try Ext4FileSystem(volume: MemoryBlockSource(broken)).list(["dir", "sub"])) {
            XCTAssertEqual(($0 as? PluginError)?.code, .corrupt)
            XCTAssertTrue(($0 as? PluginError)?.message.contains("record at byte 0") ?? false, "\($0)")
        }
        // A name pointing to a nonexistent inode: listed, marked unreadable.
        let medium = try XCTUnwrap(try clean.list(["dir", "sub"]).first)
        var dangling = original
        var position = dirBlock
        while dangling.le32(position) != medium.identifier { position += Int(dangling.le16(position + 4)) }
        dangling.putLE32(0xFFFF_FFF0, at: position)
        let listed = try Ext4FileSystem(volume: MemoryBlockSource(dangling)).list(["dir", "sub"])
        XCTAssertTrue(listed.first { $0.name == "medium.bin" }?.unreadable?.contains("does not exist") ?? false, "\(listed)")
    }

    /// Structures a damaged or hostile volume could hold, each with the error it must give.
    func testHostileStructuresAreRefused() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let original = try FileSystemTesting.load(try smallImage(directory))
        let clean = try Ext4FileSystem(volume: MemoryBlockSource(original))
        let frag = try clean.entry(["frag.bin"])
        let root = try inodeOffset(clean, frag.identifier) + 0x28
        let leaf = Int(original.le32(root + 16))
        func expectError(_ bytes: [UInt8], _ phrase: String, line: UInt = #line) {
            XCTAssertThrowsError(try FileSystemTesting.content(try Ext4FileSystem(volume: MemoryBlockSource(bytes)), frag), line: line) {
                XCTAssertEqual(($0 as? PluginError)?.code, .corrupt, line: line)
                XCTAssertTrue(($0 as? PluginError)?.message.contains(phrase) ?? false, "\($0)", line: line)
            }
        }
        var twice = original  // a second index to the same leaf
        twice.putLE16(2, at: root + 2)
        twice.put(Array(original[root + 12..<root + 24]), at: root + 24)
        twice.putLE32(100, at: root + 24)
        expectError(twice, "extent node at block \(leaf) is referenced twice")
        var unordered = twice
        unordered.putLE32(0, at: root + 24)
        expectError(unordered, "index 1 (logical block 0) is out of order")
        var wrongDepth = original
        wrongDepth.putLE16(1, at: leaf * 1024 + 6)
        expectError(wrongDepth, "extent node has depth 1 where 0 was expected")
        var outside = original
        outside.putLE32(UInt32(clean.volume.superblock.blocksCount + 5), at: leaf * 1024 + 12 + 8)
        expectError(outside, "is outside the file system")
        var overlapping = original
        overlapping.putLE32(0, at: leaf * 1024 + 24)  // extent 1 starts where extent 0 does
        expectError(overlapping, "extent 1 (logical block 0) overlaps the one before it")
        var badMagic = original
        badMagic.putLE16(0x1234, at: leaf * 1024)
        expectError(badMagic, "extent header magic is 0x1234")

        // Superblock fields that would divide by zero or size tables absurdly.
        for (offset, value, phrase) in [(0x20, UInt32(0), "blocks per group"), (0x28, 0, "inodes per group"),
                                        (0x18, 7, "block size exponent"), (0x58, 100, "inode size"), (0x00, 1 << 30, "inodes do not fit")] {
            var bytes = original
            if offset == 0x58 { bytes.putLE16(UInt16(value), at: 1024 + offset) } else { bytes.putLE32(value, at: 1024 + offset) }
            XCTAssertThrowsError(try Ext4FileSystem(volume: MemoryBlockSource(bytes))) {
                XCTAssertTrue(($0 as? PluginError)?.message.contains(phrase) ?? false, "\($0)")
            }
        }
        var symlink = original  // a slow symlink claiming 1 TiB
        let long = try inodeOffset(clean, try clean.entry(["long"]).identifier)
        symlink.putLE32(1 << 8, at: long + 0x6C)
        let entry = try Ext4FileSystem(volume: MemoryBlockSource(symlink)).entry(["long"])
        XCTAssertTrue(entry.unreadable?.contains("symlink target of 1099511627876 bytes exceeds 65536") ?? false, "\(entry)")
    }

    /// ~1500 mutations of superblock, group descriptors, inode table, directory blocks, extent
    /// and indirect blocks: every run ends in a result or a PluginError.
    func testFuzzExt4() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        var total = 0
        for (options, count, seed) in [([String](), 1000, UInt64(21)), (["-t", "ext2"], 500, 22)] {
            let source = MemoryBlockSource(try FileSystemTesting.load(try smallImage(directory, options: options)))
            let fs = try Ext4FileSystem(volume: source)
            let blockSize = fs.volume.blockSize
            // The superblock fields the reader uses, the first group descriptors, and the
            // inodes in use (the root, lost+found, and the tree's ~170 inodes from 11 on).
            var regions: [Range<Int>] = [1024..<1024 + 0x108, 1024 + 0x150..<1024 + 0x158, 2048..<2048 + 128]
            let table = try inodeOffset(fs, 1)
            regions.append(table + fs.volume.superblock.inodeSize..<table + 2 * fs.volume.superblock.inodeSize)
            regions.append(table + 10 * fs.volume.superblock.inodeSize..<table + 180 * fs.volume.superblock.inodeSize)
            for path in [[], ["dir"], ["dir", "sub"], ["frag.bin"], ["dir", "sub", "medium.bin"]] {
                let entry = try fs.entry(path)
                regions += try fs.volumeExtents(of: entry).prefix(4).map { Int($0.lowerBound)..<Int(min($0.upperBound, $0.lowerBound + UInt64(blockSize))) }
                let inode = try fs.volume.inode(UInt32(entry.identifier))
                let area = inode.blockArea
                if inode.usesExtents, area.le16(6) > 0 {
                    let leaf = Int(area.le32(16)) * blockSize  // first index's child
                    regions.append(leaf..<leaf + blockSize)
                } else if !inode.usesExtents, area.le32(48) != 0 {
                    let indirect = Int(area.le32(48)) * blockSize  // single-indirect block
                    regions.append(indirect..<indirect + blockSize)
                }
            }
            total += FileSystemTesting.fuzz(source, regions: regions, count: count, seconds: 6, seed: seed) { volume in
                guard Ext4FileSystem.probe(volume) else { return }
                try FileSystemTesting.exercise(try Ext4FileSystem(volume: volume))
            }
        }
        XCTAssertGreaterThan(total, 300)
    }
}
