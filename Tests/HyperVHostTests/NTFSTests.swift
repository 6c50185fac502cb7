import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

/// The NTFS reader against volumes made by mkntfs and filled by libntfs-3g (without mounting):
/// Fixtures/ntfs/ntfs_populate.c is compiled by the test and copies a tree described by a
/// manifest. Tools: mkntfs, cc, the libntfs-3g headers (ntfs-3g-dev) and fsntfsinfo
/// (libfsntfs-utils) for cross-checks; a missing one skips the tests, or fails them when
/// CI=true.
final class NTFSTests: XCTestCase {
    // MARK: Fixtures

    /// A volume image built from a tree, with the tree's expected content.
    final class Volume {
        let directory: TemporaryDirectory
        let image: String
        let tree: NTFSTree

        init(name: String, megabytes: Int, tree: NTFSTree) throws {
            directory = try TemporaryDirectory("ntfs")
            self.tree = tree
            image = directory.path("\(name).img")
            let helper = try NTFSTests.helper()
            _ = FileManager.default.createFile(atPath: image, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
            try handle.truncate(atOffset: UInt64(megabytes) << 20)
            try handle.close()
            let mkntfs = try runProcess([try NTFSTests.tool("mkntfs"), "-q", "-F", "-f", "-Q", "-L", "DPMTEST", image])
            guard mkntfs.status == 0 else { throw PluginError(.internalError, "mkntfs: \(mkntfs.stderr)") }
            let manifest = try tree.writeManifest(hostDirectory: directory.path("host"))
            let populate = try runProcess([helper, image, manifest])
            guard populate.status == 0 else { throw PluginError(.internalError, "ntfs_populate: \(populate.stderr)") }
        }

        /// The image opened through the disk-image layer, as recovery opens disks at rest.
        func open() throws -> NTFSFileSystem {
            let source = DiskImageSource(try DiskImageOpener.open(path: image))
            XCTAssertTrue(NTFSFileSystem.probe(source))
            return try NTFSFileSystem(volume: source)
        }

        func memory() throws -> MemoryVolume { MemoryVolume([UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))) }
    }

    private static var sharedMain: Volume?
    private static var sharedSmall: Volume?
    private static var compiledHelper: (TemporaryDirectory, String)?

    override class func tearDown() {
        sharedMain = nil
        sharedSmall = nil
        compiledHelper = nil
        super.tearDown()
    }

    /// The 256 MiB volume with the full test tree (built once).
    static func mainVolume() throws -> Volume {
        if let sharedMain { return sharedMain }
        let volume = try Volume(name: "main", megabytes: 256, tree: .full())
        sharedMain = volume
        return volume
    }

    /// A 16 MiB volume for corruption and fuzzing (built once; tests work on in-memory copies).
    static func smallVolume() throws -> Volume {
        if let sharedSmall { return sharedSmall }
        let volume = try Volume(name: "small", megabytes: 16, tree: .small())
        sharedSmall = volume
        return volume
    }

    /// A tool's path (also looked for in /usr/sbin and /sbin, where mkntfs lives).
    static func tool(_ name: String) throws -> String {
        if let found = TestSupport.which(name) { return found }
        for directory in ["/usr/sbin", "/sbin", "/usr/bin"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        try TestSupport.require(name)
        throw XCTSkip("\(name) is not installed")
    }

    /// Compiles Fixtures/ntfs/ntfs_populate.c against libntfs-3g (once).
    static func helper() throws -> String {
        if let compiledHelper { return compiledHelper.1 }
        let compiler = try tool("cc")
        guard FileManager.default.fileExists(atPath: "/usr/include/ntfs-3g/volume.h") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("the libntfs-3g headers (ntfs-3g-dev) are required in CI") }
            throw XCTSkip("the libntfs-3g headers are not installed (apt-get install -y ntfs-3g-dev)")
        }
        let directory = try TemporaryDirectory("ntfs-helper")
        let output = directory.path("ntfs_populate")
        let source = TestSupport.repositoryRoot + "/Tests/HyperVHostTests/Fixtures/ntfs/ntfs_populate.c"
        let result = try runProcess([compiler, "-O1", "-Wall", "-o", output, source, "-DHAVE_STDINT_H", "-DHAVE_SYS_TYPES_H",
                                     "-DHAVE_TIME_H", "-I/usr/include/ntfs-3g", "-lntfs-3g"])
        guard result.status == 0 else { throw PluginError(.internalError, "cc ntfs_populate.c: \(result.stderr)") }
        compiledHelper = (directory, output)
        return output
    }

    // MARK: The tree, read back

    func testTreeReadsBackExactly() throws {
        let volume = try Self.mainVolume()
        let fs = try volume.open()
        XCTAssertEqual(fs.type, "ntfs")
        XCTAssertEqual(fs.label, "DPMTEST")
        let found = try walk(fs)
        let expected = volume.tree.nodes
        XCTAssertEqual(Set(found.keys), Set(expected.keys), "paths differ")
        for (path, node) in expected.sorted(by: { $0.key < $1.key }) {
            guard let entry = found[path] else { continue }
            XCTAssertEqual(entry.kind, node.kind, path)
            XCTAssertNil(entry.unreadable, path)
            XCTAssertEqual(entry.name, (path as NSString).lastPathComponent, path)
            if let target = node.linkTarget { XCTAssertEqual(entry.linkTarget, target, path) }
            guard node.kind == .file, let content = node.content else { continue }
            XCTAssertEqual(entry.size, UInt64(content.count), path)
            XCTAssertEqual(try readAll(fs, entry, chunk: 1 << 20), content, "content of \(path)")
            if let times = node.times {
                // A Date (a Double of seconds since 2001) keeps NTFS's 100 ns units to ±1.
                for (date, raw, name) in [(entry.created, times.created, "created"), (entry.modified, times.modified, "modified"),
                                          (entry.accessed, times.accessed, "accessed")] {
                    let read = Int64(bitPattern: try XCTUnwrap(date.map(NTFSTime.raw), "\(path) \(name)"))
                    XCTAssertLessThanOrEqual(abs(read - Int64(bitPattern: raw)), 1, "\(path) \(name)")
                }
            }
            XCTAssertNotNil(entry.changed, path)
        }
        // Odd-sized reads across run and compression-unit boundaries.
        for path in ["/big.bin", "/sparse.bin", "/frag/a.bin", "/compressed/text.txt", "/compressed/random.bin"] {
            let entry = try XCTUnwrap(found[path]), content = try XCTUnwrap(expected[path]?.content)
            XCTAssertEqual(try readAll(fs, entry, chunk: 4093), content, "4093-byte reads of \(path)")
        }
    }

    func testNamesLinksStreamsAndLookups() throws {
        let fs = try Self.mainVolume().open()
        // Hard links: one MFT record under three names.
        let links = try [["links", "original.txt"], ["links", "second.txt"], ["docs", "third.txt"]].map { try fs.entry($0) }
        XCTAssertEqual(Set(links.map(\.identifier)).count, 1)
        XCTAssertEqual(links.map(\.name), ["original.txt", "second.txt", "third.txt"])
        // Case-insensitive lookup (ASCII and through $UpCase), returning the stored name.
        XCTAssertEqual(try fs.entry(["DOCS", "A", "b", "C", "DEEP.TXT"]).name, "deep.txt")
        XCTAssertEqual(try fs.entry(["unicode", "ÜNÏCÖDÉ ÇASE.TXT"]).name, "Ünïcödé Çase.txt")
        XCTAssertEqual(try fs.entry(["unicode", NTFSTree.emojiName]).name, NTFSTree.emojiName)
        // A DOS 8.3 alias is not listed, but resolves to the same file.
        let longName = try fs.list(["LongName"])
        XCTAssertEqual(longName.map(\.name), ["A Long File Name.txt"])
        XCTAssertEqual(try fs.entry(["LongName", "ALONGF~1.TXT"]).identifier, longName[0].identifier)
        // Metadata files are hidden from the root listing but can be asked for.
        let root = try fs.list([])
        XCTAssertFalse(root.contains { $0.name.hasPrefix("$") })
        let everything = try fs.list([], includeSystemFiles: true)
        for name in ["$MFT", "$MFTMirr", "$LogFile", "$Volume", "$AttrDef", "$Bitmap", "$Boot", "$BadClus", "$Secure", "$UpCase", "$Extend"] {
            XCTAssertTrue(everything.contains { $0.name == name }, name)
        }
        let mftEntry = try fs.entry(["$MFT"])
        XCTAssertEqual(mftEntry.identifier, 0)
        XCTAssertEqual(mftEntry.kind, .file)
        XCTAssertEqual(try fs.entry(["$Extend"]).kind, .directory)
        XCTAssertEqual(try fs.entry([]).identifier, 5)
        // Named streams.
        let tiny = try fs.entry(["tiny.txt"])
        let streams = try fs.namedStreams(of: tiny)
        XCTAssertEqual(streams.map(\.name), ["alt"])
        var alt = [UInt8](repeating: 0, count: Int(streams[0].size))
        try alt.withUnsafeMutableBytes { try fs.read(tiny, stream: "alt", at: 0, into: $0) }
        XCTAssertEqual(alt, Array("alternate data stream\n".utf8))
        // Errors.
        XCTAssertThrowsError(try fs.entry(["docs", "missing.txt"])) { XCTAssertEqual(($0 as? PluginError)?.code, .notFound) }
        XCTAssertThrowsError(try fs.list(["tiny.txt"])) { XCTAssertEqual(($0 as? PluginError)?.code, .invalid) }
        var byte = [UInt8](repeating: 0, count: 2)
        XCTAssertThrowsError(try byte.withUnsafeMutableBytes { try fs.read(tiny, at: tiny.size - 1, into: $0) }) {
            XCTAssertEqual(($0 as? PluginError)?.code, .invalid)
        }
        XCTAssertThrowsError(try byte.withUnsafeMutableBytes { try fs.read(try fs.entry(["docs"]), at: 0, into: $0) }) {
            XCTAssertEqual(($0 as? PluginError)?.code, .invalid)
        }
    }

    func testStructuresTheTreeExercises() throws {
        let fs = try Self.mainVolume().open()
        // /many has INDX blocks below the root node.
        let many = try NTFSInode(try fs.entry(["many"]).identifier, mft: fs.mft)
        XCTAssertNotNil(try many.stream(NTFSAttribute.indexAllocation, name: "$I30", mft: fs.mft))
        let index = try NTFSDirectoryIndex.read(many, mft: fs.mft)
        XCTAssertGreaterThan(index.blocksRead, 4)
        XCTAssertGreaterThanOrEqual(index.depth, 1)
        XCTAssertEqual(try fs.list(["many"]).count, NTFSTree.manyCount)
        // The fragmented file's runlist overflowed into extension records.
        let fragment = try NTFSInode(try fs.entry(["frag", "a.bin"]).identifier, mft: fs.mft)
        XCTAssertFalse(fragment.pieces(NTFSAttribute.attributeList).isEmpty, "a.bin has no $ATTRIBUTE_LIST")
        XCTAssertGreaterThan(fragment.pieces(NTFSAttribute.data).count, 1)
        XCTAssertGreaterThan(try fs.volumeExtents(of: try fs.entry(["frag", "a.bin"])).count, 50)
        // Sparse and compressed files.
        let sparse = try XCTUnwrap(try dataStream(fs, ["sparse.bin"]))
        XCTAssertTrue(sparse.isSparse)
        XCTAssertTrue(sparse.runs.contains { $0.lcn == nil })
        for name in ["text.txt", "random.bin", "zeros.bin"] {
            XCTAssertTrue(try XCTUnwrap(try dataStream(fs, ["compressed", name])).isCompressed, name)
        }
        XCTAssertLessThan(try extentBytes(fs, ["compressed", "text.txt"]), 400_000 / 2)
    }

    func testVolumeExtents() throws {
        let volume = try Self.mainVolume()
        let fs = try volume.open()
        let image = try FileReader(path: volume.image)
        let big = try fs.entry(["big.bin"])
        let extents = try fs.volumeExtents(of: big)
        XCTAssertEqual(extents.reduce(0) { $0 + $1.count }, 10 << 20)
        XCTAssertEqual(extents, extents.sorted { $0.lowerBound < $1.lowerBound })
        if extents.count == 1 {
            var head = [UInt8](repeating: 0, count: 8192)
            try head.withUnsafeMutableBytes { try image.read(at: extents[0].lowerBound, into: $0) }
            XCTAssertEqual(head, Array(try XCTUnwrap(volume.tree.nodes["/big.bin"]?.content).prefix(8192)))
        }
        XCTAssertEqual(try fs.volumeExtents(of: try fs.entry(["tiny.txt"])), [])
        XCTAssertEqual(try fs.volumeExtents(of: try fs.entry(["empty.txt"])), [])
        XCTAssertLessThan(try extentBytes(fs, ["sparse.bin"]), 1 << 20)
    }

    // MARK: Cross-checks with fsntfsinfo (libfsntfs)

    func testAgreesWithFsntfsinfo() throws {
        let fsntfsinfo = try Self.tool("fsntfsinfo")
        let volume = try Self.mainVolume()
        let fs = try volume.open()
        // The whole hierarchy, without metadata files and streams.
        let hierarchy = try runProcess([fsntfsinfo, "-H", volume.image])
        XCTAssertEqual(hierarchy.status, 0, hierarchy.stderr)
        let theirs = Set(hierarchy.stdout.split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix("\\") && !$0.hasPrefix("\\$") && !$0.contains(":") }
            .map { $0.replacingOccurrences(of: "\\", with: "/") })
        // libfsntfs 20200921 decodes surrogate pairs wrongly ("😀" comes out as "🈁"): names
        // outside the Basic Multilingual Plane are left out of the comparison.
        let outsideBMP: (String) -> Bool = { $0.unicodeScalars.contains { $0.value > 0xFFFF } }
        XCTAssertEqual(Set(try walk(fs).keys.filter { !outsideBMP($0) }), theirs.filter { !outsideBMP($0) })
        // A few entries in detail: MFT record number, size, times.
        for path in ["/big.bin", "/docs/readme.txt", "/many/file-007.txt", "/frag/b.bin", "/compressed/text.txt", "/" + NTFSTree.japaneseName] {
            let components = path.split(separator: "/").map(String.init)
            let entry = try fs.entry(components)
            let info = try runProcess([fsntfsinfo, "-F", path.replacingOccurrences(of: "/", with: "\\"), volume.image])
            XCTAssertEqual(info.status, 0, info.stderr)
            let fields = Self.fields(info.stdout)
            XCTAssertEqual(fields["File reference"]?.split(separator: "-").first.map(String.init), String(entry.identifier), path)
            XCTAssertEqual(fields["Size"], String(entry.size), path)
            for (name, date) in [("Creation time", entry.created), ("Modification time", entry.modified),
                                 ("Access time", entry.accessed), ("Entry modification time", entry.changed)] {
                let theirs = try XCTUnwrap(fields[name].flatMap(Self.fsntfsTime), "\(path) \(name)")
                XCTAssertEqual(try XCTUnwrap(date).timeIntervalSince1970, theirs, accuracy: 1e-6, "\(path) \(name)")
            }
        }
    }

    /// "Name : value" lines of fsntfsinfo (the first of each name).
    static func fields(_ output: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if fields[name] == nil { fields[name] = value }
        }
        return fields
    }

    /// "Dec 14, 2012 23:06:40.123456700 UTC" as seconds since 1970.
    static func fsntfsTime(_ text: String) -> Double? {
        let parts = text.replacingOccurrences(of: " UTC", with: "").split(separator: ".")
        guard parts.count == 2, let fraction = Double("0." + parts[1]) else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MMM dd, yyyy HH:mm:ss"
        return formatter.date(from: String(parts[0])).map { $0.timeIntervalSince1970 + fraction }
    }

    // MARK: Refusals

    func testEncryptedAndUnsupportedCompressionAreRefused() throws {
        let volume = try Self.smallVolume()
        let pristine = try NTFSFileSystem(volume: try volume.memory())
        let target = try pristine.entry(["plain.bin"])
        // EFS: set the encrypted flag on the $DATA attribute record.
        let encrypted = try volume.memory()
        try Self.patchAttribute(encrypted, fs: pristine, record: target.identifier, type: NTFSAttribute.data) { record, offset in
            record.putLE16(record.le16(offset + 0x0C) | NTFSAttribute.flagEncrypted, at: offset + 0x0C)
        }
        let fs = try NTFSFileSystem(volume: encrypted)
        let entry = try fs.entry(["plain.bin"])
        XCTAssertTrue(entry.unreadable?.hasPrefix("NTFS-encrypted file") ?? false, "\(entry.unreadable ?? "nil")")
        assertRead(fs, entry, throws: .unsupported, containing: "encrypted")
        // A compression method other than LZNT1.
        let odd = try volume.memory()
        try Self.patchAttribute(odd, fs: pristine, record: target.identifier, type: NTFSAttribute.data) { record, offset in
            record.putLE16(record.le16(offset + 0x0C) | 0x0002, at: offset + 0x0C)
            record.put(4, at: offset + 0x22)
        }
        let oddFS = try NTFSFileSystem(volume: odd)
        let oddEntry = try oddFS.entry(["plain.bin"])
        XCTAssertTrue(oddEntry.unreadable?.hasPrefix("NTFS-compressed file;") ?? false, "\(oddEntry.unreadable ?? "nil")")
        assertRead(oddFS, oddEntry, throws: .unsupported, containing: "not LZNT1")
    }

    func testLZNT1() throws {
        // A stored chunk, then a compressed chunk "abcabcabc…" (3 literals and one back-reference).
        var data: [UInt8] = [0xFF, 0x3F] + [UInt8](repeating: 0x41, count: 4096)
        let token: UInt16 = (2 << 12) | (20 - 3)  // 3 bytes back, 20 bytes long (12 length bits at P = 3)
        let body: [UInt8] = [0x08, 0x61, 0x62, 0x63, UInt8(token & 0xFF), UInt8(token >> 8)]
        let header = UInt16(0xB000) | UInt16(body.count - 1)
        data += [UInt8(header & 0xFF), UInt8(header >> 8)] + body
        let output = try NTFSLZNT1.decompress(data, outputSize: 3 * 4096, owner: "test")
        XCTAssertEqual(Array(output[0..<4096]), [UInt8](repeating: 0x41, count: 4096))
        XCTAssertEqual(Array(output[4096..<4096 + 23]), Array(String(repeating: "abc", count: 8).utf8.prefix(23)))
        XCTAssertTrue(output[(4096 + 23)...].allSatisfy { $0 == 0 })
        // Random input: only data or a PluginError.
        var random = SeededGenerator(seed: 7)
        for _ in 0..<2000 {
            var input = random.bytes(Int(random.next() % 300))
            if input.count >= 2 { input[1] = (input[1] & 0x8F) | 0x30 }
            do { _ = try NTFSLZNT1.decompress(input, outputSize: 8192, owner: "fuzz") } catch is PluginError {}
        }
        // A back-reference before any data.
        XCTAssertThrowsError(try NTFSLZNT1.decompress([0x02, 0xB0, 0x01, 0x00, 0x00], outputSize: 4096, owner: "test")) {
            XCTAssertEqual(($0 as? PluginError)?.code, .corrupt)
        }
    }
}

// MARK: - Damaged volumes

extension NTFSTests {
    func testDamagedBootSector() throws {
        let volume = try Self.smallVolume()
        // Not NTFS at all.
        let foreign = try volume.memory()
        foreign.bytes.replaceSubrange(3..<11, with: Array("MSDOS5.0".utf8))
        XCTAssertFalse(NTFSFileSystem.probe(foreign))
        assertOpen(foreign, throws: .corrupt, containing: "not an NTFS volume")
        // Damaged primary boot sector: the backup in the last sector is used.
        let primary = try volume.memory()
        primary.bytes[0x0B] = 3
        XCTAssertEqual(try NTFSFileSystem(volume: primary).list(["many"]).count, NTFSTree.smallManyCount)
        // Both copies damaged, field by field.
        let cases: [(Int, [UInt8], String)] = [
            (0x0B, [0x03, 0x00], "bytes per sector"), (0x0D, [0x03], "not a power of two"), (0x0D, [0xE0], "out of range"),
            (0x28, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "impossible"), (0x28, [0x00, 0x00, 0x00, 0x01], "only"),
            (0x30, [0xFF, 0xFF, 0xFF, 0x00], "past the end of the volume"), (0x40, [0x00], "MFT record size"),
            (0x40, [0x7F], "MFT record size"), (0x44, [0xE0], "index block size"),
        ]
        for (offset, bytes, message) in cases {
            let both = try volume.memory()
            let backup = both.bytes.count - 512
            both.bytes.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            both.bytes.replaceSubrange(backup + offset..<backup + offset + bytes.count, with: bytes)
            assertOpen(both, throws: .corrupt, containing: message)
        }
        // A truncated volume.
        let short = try volume.memory()
        short.bytes.removeLast(1 << 20)
        assertOpen(short, throws: .corrupt, containing: "truncated")
    }

    func testTornAndDamagedMFTRecords() throws {
        let volume = try Self.smallVolume()
        let pristine = try NTFSFileSystem(volume: try volume.memory())
        let plain = try pristine.entry(["plain.bin"])
        let offset = Int(try XCTUnwrap(pristine.recordOffset(plain.identifier)))
        // A torn write: the end of a record's second sector no longer carries the USN.
        let torn = try volume.memory()
        torn.bytes[offset + 1022] ^= 0x55
        let fs = try NTFSFileSystem(volume: torn)
        let listed = try XCTUnwrap(try fs.list([]).first { $0.name == "plain.bin" })
        XCTAssertTrue(listed.unreadable?.contains("MFT record \(plain.identifier) is torn") ?? false, "\(listed.unreadable ?? "nil")")
        assertRead(fs, listed, throws: .corrupt, containing: "torn")
        assertEntry(fs, ["plain.bin"], throws: .corrupt, containing: "is torn")
        // Other damage, with valid fixups so that the parser sees it.
        let damages: [(String, (inout [UInt8]) -> Void)] = [
            ("runs past the record", { $0.putLE32(0x2000, at: Int($0.le16(0x14)) + 4) }),
            ("not ended by 0xFFFFFFFF", { record in
                let first = Int(record.le16(0x14)), size = UInt32(record.count)
                record.putLE32(size, at: 0x18)
                record.putLE32(size - UInt32(first), at: first + 4)
            }),
            ("signature", { $0.replaceSubrange(0..<4, with: Array("FILX".utf8)) }),
            ("says it is record", { $0.putLE32(7, at: 0x2C) }),
            ("update sequence array", { $0.putLE16(5, at: 6) }),
        ]
        for (message, damage) in damages {
            let copy = try volume.memory()
            Self.rewriteRecord(copy, at: offset, size: pristine.boot.recordSize, damage)
            let damaged = try NTFSFileSystem(volume: copy)
            assertEntry(damaged, ["plain.bin"], throws: .corrupt, containing: message)
            XCTAssertTrue(try damaged.list([]).contains { $0.name == "plain.bin" && $0.unreadable != nil }, message)
        }
        // $MFT's record 0 damaged: the mirror is used; both damaged: a clear error.
        let zero = Int(try XCTUnwrap(pristine.recordOffset(0)))
        let mirrored = try volume.memory()
        mirrored.bytes[zero + 510] ^= 0xFF
        XCTAssertEqual(try NTFSFileSystem(volume: mirrored).list(["many"]).count, NTFSTree.smallManyCount)
        let mirror = Int(pristine.boot.mftMirrorCluster * pristine.boot.clusterSize)
        mirrored.bytes[mirror + 510] ^= 0xFF
        assertOpen(mirrored, throws: .corrupt, containing: "MFT record 0 is torn")
    }

    func testDamagedIndexesRunlistsAndAttributeLists() throws {
        let volume = try Self.smallVolume()
        let pristine = try NTFSFileSystem(volume: try volume.memory())
        let many = try NTFSInode(try pristine.entry(["many"]).identifier, mft: pristine.mft)
        let allocation = try XCTUnwrap(try many.stream(NTFSAttribute.indexAllocation, name: "$I30", mft: pristine.mft))
        let block = Int(try XCTUnwrap(allocation.volumeExtents.first).lowerBound)
        // A torn INDX block.
        let torn = try volume.memory()
        torn.bytes[block + 1022] ^= 0x01
        assertList(torn, ["many"], throws: .corrupt, containing: "index block at VCN 0 is torn")
        // An INDX block whose entries overflow it, with valid fixups.
        let overflow = try volume.memory()
        let blockSize = Int(try XCTUnwrap(many.pieces(NTFSAttribute.indexRoot, name: "$I30").first?.residentValue).le32(8))
        Self.rewriteRecord(overflow, at: block, size: blockSize) { $0.putLE32(0x10000, at: 0x1C) }
        assertList(overflow, ["many"], throws: .corrupt, containing: "lie outside the node")
        // An index node pointing back at itself (an INDX block with children) or twice at
        // the same child (the root): the loop is refused.
        let looping = try volume.memory()
        let clusterSize = pristine.boot.clusterSize
        let vcnUnit = UInt64(blockSize) >= clusterSize ? clusterSize : 512
        var patched = false
        for start in stride(from: UInt64(0), to: allocation.size, by: blockSize) where !patched {
            guard let run = NTFSRunList.index(of: start / clusterSize, in: allocation.runs), let lcn = allocation.runs[run].lcn else { continue }
            let at = Int((lcn + start / clusterSize - allocation.runs[run].vcn) * clusterSize + start % clusterSize)
            guard looping.bytes.matches("INDX", at: at) else { continue }
            Self.rewriteRecord(looping, at: at, size: blockSize) { block in
                var entry = 0x18 + Int(block.le32(0x18))
                while entry + 16 <= 0x18 + Int(block.le32(0x1C)), block.le16(entry + 8) >= 16 {
                    let length = Int(block.le16(entry + 8)), flags = block.le16(entry + 12)
                    if flags & 1 != 0 {
                        block.putLE64(start / vcnUnit, at: entry + length - 8)
                        patched = true
                        return
                    }
                    if flags & 2 != 0 { break }
                    entry += length
                }
            }
        }
        if !patched {
            let rootOffset = Int(try XCTUnwrap(pristine.recordOffset(many.number)))
            let indexRoot = try XCTUnwrap(many.pieces(NTFSAttribute.indexRoot, name: "$I30").first)
            Self.rewriteRecord(looping, at: rootOffset, size: pristine.boot.recordSize) { record in
                let value = indexRoot.offset + Int(record.le16(indexRoot.offset + 0x14))
                var entry = value + 0x10 + Int(record.le32(value + 0x10))
                var children: [Int] = []
                while children.count < 2, record.le16(entry + 8) >= 0x18 {
                    if record.le16(entry + 12) & 1 != 0 { children.append(entry + Int(record.le16(entry + 8)) - 8) }
                    if record.le16(entry + 12) & 2 != 0 { break }
                    entry += Int(record.le16(entry + 8))
                }
                if children.count == 2 {
                    record.putLE64(record.le64(children[0]), at: children[1])
                    patched = true
                }
            }
        }
        XCTAssertTrue(patched, "found no index node to make loop")
        assertList(looping, ["many"], throws: .corrupt, containing: "reached twice")
        // A runlist pointing past the end of the volume.
        let plain = try pristine.entry(["plain.bin"])
        let outside = try volume.memory()
        try Self.patchAttribute(outside, fs: pristine, record: plain.identifier, type: NTFSAttribute.data) { record, offset in
            let runs = offset + Int(record.le16(offset + 0x20))
            let header = record[runs], lengthSize = Int(header & 0x0F), deltaSize = Int(header >> 4)
            record.put(0x7F, at: runs + lengthSize + deltaSize)  // the top byte of the first LCN
        }
        let outsideFS = try NTFSFileSystem(volume: outside)
        let outsideEntry = try XCTUnwrap(try outsideFS.list([]).first { $0.name == "plain.bin" })
        XCTAssertTrue(outsideEntry.unreadable?.contains("lies outside the volume") ?? false, "\(outsideEntry.unreadable ?? "nil")")
        assertRead(outsideFS, outsideEntry, throws: .corrupt, containing: "lies outside the volume")
        // A run of no clusters.
        let zeroLength = try volume.memory()
        try Self.patchAttribute(zeroLength, fs: pristine, record: plain.identifier, type: NTFSAttribute.data) { record, offset in
            let runs = offset + Int(record.le16(offset + 0x20))
            for index in 1...Int(record[runs] & 0x0F) { record[runs + index] = 0 }
        }
        assertEntry(try NTFSFileSystem(volume: zeroLength), ["plain.bin"], throws: .corrupt, containing: "has length 0 clusters")
        // Attribute lists naming a record of another file, or looping back to the file itself.
        let fragment = try NTFSInode(try pristine.entry(["frag", "a.bin"]).identifier, mft: pristine.mft)
        let list = try XCTUnwrap(fragment.pieces(NTFSAttribute.attributeList).first)
        let fragmentOffset = Int(try XCTUnwrap(pristine.recordOffset(fragment.number)))
        let sequence = fragment.base.sequence
        for (replacement, message) in [(plain.identifier, "is not an extension record of this file"),
                                       (fragment.number, "a part of the attribute is missing")] {
            // Points every $DATA entry held outside the base record at `replacement`.
            func redirect(_ bytes: inout [UInt8], _ range: Range<Int>) {
                var entry = range.lowerBound
                while entry + 0x1A <= range.upperBound, bytes.le16(entry + 4) >= 0x1A {
                    if bytes.le32(entry) == NTFSAttribute.data && NTFSReference.record(bytes.le64(entry + 0x10)) != fragment.number {
                        bytes.putLE64(replacement | UInt64(sequence) << 48, at: entry + 0x10)
                    }
                    entry += Int(bytes.le16(entry + 4))
                }
            }
            let copy = try volume.memory()
            if list.residentValue != nil {
                Self.rewriteRecord(copy, at: fragmentOffset, size: pristine.boot.recordSize) { record in
                    let value = list.offset + Int(record.le16(list.offset + 0x14))
                    redirect(&record, value..<value + Int(record.le32(list.offset + 0x10)))
                }
            } else {
                let listStream = try NTFSStream(pieces: [list], owner: "list", volume: copy, clusterSize: pristine.boot.clusterSize)
                let extent = try XCTUnwrap(listStream.volumeExtents.first)
                XCTAssertGreaterThanOrEqual(UInt64(extent.count), listStream.size)
                redirect(&copy.bytes, Int(extent.lowerBound)..<Int(extent.lowerBound + listStream.size))
            }
            assertEntry(try NTFSFileSystem(volume: copy), ["frag", "a.bin"], throws: .corrupt, containing: message)
        }
    }

    func testValidDataLengthAndDirectoryLoops() throws {
        let volume = try Self.smallVolume()
        let pristine = try NTFSFileSystem(volume: try volume.memory())
        let plain = try pristine.entry(["plain.bin"])
        let content = try readAll(pristine, plain, chunk: 1 << 20)
        // Bytes past the valid data length ("initialized size") read as zeros.
        let shortened = try volume.memory()
        try Self.patchAttribute(shortened, fs: pristine, record: plain.identifier, type: NTFSAttribute.data) { record, offset in
            record.putLE64(100_000, at: offset + 0x38)
        }
        let fs = try NTFSFileSystem(volume: shortened)
        let entry = try fs.entry(["plain.bin"])
        XCTAssertEqual(entry.size, UInt64(content.count))
        XCTAssertEqual(try readAll(fs, entry, chunk: 65536), Array(content.prefix(100_000)) + [UInt8](repeating: 0, count: content.count - 100_000))
        // A directory entry naming a directory above it is left out, so a recursive walk ends.
        let frag = try NTFSInode(try pristine.entry(["frag"]).identifier, mft: pristine.mft)
        let root = try XCTUnwrap(frag.pieces(NTFSAttribute.indexRoot, name: "$I30").first)
        let looping = try volume.memory()
        Self.rewriteRecord(looping, at: Int(try XCTUnwrap(pristine.recordOffset(frag.number))), size: pristine.boot.recordSize) { record in
            let value = root.offset + Int(record.le16(root.offset + 0x14))
            let first = value + 0x10 + Int(record.le32(value + 0x10))
            record.putLE64(NTFSFileSystem.rootRecord | 5 << 48, at: first)
        }
        let loopFS = try NTFSFileSystem(volume: looping)
        XCTAssertEqual(try loopFS.list(["frag"]).map(\.name), [])
        XCTAssertEqual(try walk(loopFS).count, try walk(pristine).count - 1)
    }

    /// $MFT's runlist continued in an extension record, as on a Windows volume whose $MFT is
    /// fragmented: record 0 keeps the clusters of records 0–31, record 15 maps the rest, and an
    /// $ATTRIBUTE_LIST in record 0 names record 15.
    func testMFTRunlistInExtensionRecord() throws {
        let volume = try Self.smallVolume()
        let pristine = try NTFSFileSystem(volume: try volume.memory())
        let recordSize = pristine.boot.recordSize
        let runs = pristine.mft.stream.runs
        let split = UInt64(32 * recordSize) / pristine.boot.clusterSize
        let end = try XCTUnwrap(runs.last).endVCN
        XCTAssertGreaterThan(end, split)
        let data = try XCTUnwrap(try pristine.mft.record(0).attributes.first { $0.type == NTFSAttribute.data && $0.name.isEmpty })
        let zero = Int(try XCTUnwrap(pristine.recordOffset(0))), fifteen = Int(try XCTUnwrap(pristine.recordOffset(15)))
        let memory = try volume.memory()
        XCTAssertTrue(memory.bytes.matches("FILE", at: fifteen))
        var sequence: UInt16 = 0
        let sequence15 = try pristine.mft.record(15).sequence
        Self.rewriteRecord(memory, at: zero, size: recordSize) { record in
            sequence = record.le16(0x10)
            let first = Int(record.le16(0x14))
            var attributes: [[UInt8]] = []
            var offset = first
            while record.le32(offset) != NTFSAttribute.end {
                let length = Int(record.le32(offset + 4))
                var attribute = Array(record[offset..<offset + length])
                if offset == data.offset {
                    attribute = Array(attribute[0..<Int(attribute.le16(0x20))]) + Self.encodeRuns(Self.cut(runs, 0..<split))
                    attribute.putLE64(split - 1, at: 0x18)
                }
                attributes.append(attribute)
                offset += length
            }
            var list: [UInt8] = []
            func add(_ type: UInt32, vcn: UInt64, record number: UInt64, sequence: UInt16, id: UInt16) {
                var entry = [UInt8](repeating: 0, count: 0x20)
                entry.putLE32(type, at: 0)
                entry.putLE16(0x20, at: 4)
                entry.put(0x1A, at: 7)
                entry.putLE64(vcn, at: 8)
                entry.putLE64(number | UInt64(sequence) << 48, at: 0x10)
                entry.putLE16(id, at: 0x18)
                list += entry
            }
            for attribute in attributes where attribute.u8(9) == 0 { add(attribute.le32(0), vcn: 0, record: 0, sequence: sequence, id: attribute.le16(0x0E)) }
            add(NTFSAttribute.data, vcn: split, record: 15, sequence: sequence15, id: 0)
            var listAttribute = [UInt8](repeating: 0, count: 0x18) + list
            listAttribute.putLE32(NTFSAttribute.attributeList, at: 0)
            listAttribute.put(0x18, at: 0x0A)
            listAttribute.putLE16(record.le16(0x28), at: 0x0E)
            listAttribute.putLE32(UInt32(list.count), at: 0x10)
            listAttribute.putLE16(0x18, at: 0x14)
            attributes.insert(listAttribute, at: attributes.firstIndex { $0.le32(0) > NTFSAttribute.attributeList } ?? attributes.count)
            Self.writeAttributes(attributes, into: &record)
        }
        Self.rewriteRecord(memory, at: fifteen, size: recordSize) { record in
            record.putLE16(NTFSFileRecord.flagInUse, at: 0x16)
            record.putLE64(UInt64(sequence) << 48, at: 0x20)
            var piece = [UInt8](repeating: 0, count: 0x40) + Self.encodeRuns(Self.cut(runs, split..<end))
            piece.putLE32(NTFSAttribute.data, at: 0)
            piece.put(1, at: 8)
            piece.put(0x40, at: 0x0A)
            piece.putLE64(split, at: 0x10)
            piece.putLE64(end - 1, at: 0x18)
            piece.putLE16(0x40, at: 0x20)
            Self.writeAttributes([piece], into: &record)
        }
        let fs = try NTFSFileSystem(volume: memory)
        XCTAssertFalse(try NTFSInode(0, mft: fs.mft).pieces(NTFSAttribute.attributeList).isEmpty)
        XCTAssertEqual(try NTFSInode(0, mft: fs.mft).pieces(NTFSAttribute.data).count, 2)
        XCTAssertEqual(fs.mft.stream.runs, runs)
        XCTAssertEqual(try fs.list(["many"]).count, NTFSTree.smallManyCount)
        let mftEntry = try fs.entry(["$MFT"])
        let clusterSize = Int(pristine.boot.clusterSize)
        let expected = runs.flatMap { run in memory.bytes[Int(run.lcn!) * clusterSize..<Int(run.lcn! + run.length) * clusterSize] }
        XCTAssertEqual(try readAll(fs, mftEntry, chunk: 65536), Array(expected.prefix(Int(mftEntry.size))))
        // Record 15 no longer an extension record of $MFT.
        Self.rewriteRecord(memory, at: fifteen, size: recordSize) { $0.putLE64(0, at: 0x20) }
        assertOpen(memory, throws: .corrupt, containing: "is not an extension record of $MFT")
    }

    /// Random damage to a real volume: opening, listing and reading must succeed or throw a
    /// PluginError, never crash, hang or throw anything else.
    func testFuzzedVolumes() throws {
        let environment = ProcessInfo.processInfo.environment
        let mutations = Int(environment["DPM_NTFS_FUZZ_MUTATIONS"] ?? "") ?? 2000
        let budget = TimeInterval(environment["DPM_NTFS_FUZZ_SECONDS"] ?? "") ?? 20
        var random = SeededGenerator(seed: UInt64(environment["DPM_NTFS_FUZZ_SEED"] ?? "") ?? 20_260_127)
        let volume = try Self.smallVolume()
        let memory = try volume.memory()
        let pristine = try NTFSFileSystem(volume: memory)
        let recordSize = pristine.boot.recordSize
        // Hot ranges: the boot sector, the first 80 MFT records, the records of the files and
        // directories of the tree (extension records included), the INDX blocks of /many, the
        // LZNT1 data of the compressed file; otherwise a 4 KiB window in the first 4 MiB.
        let mft = Int(try XCTUnwrap(pristine.recordOffset(0)))
        var numbers = Set<UInt64>(0..<80)
        for path in [["plain.bin"], ["frag"], ["frag", "a.bin"], ["packed"], ["packed", "text.txt"], ["sparse.bin"], ["many"]] {
            numbers.formUnion(try NTFSInode(try pristine.entry(path).identifier, mft: pristine.mft).attributes.map(\.recordNumber))
        }
        var records: [Range<Int>] = numbers.sorted().compactMap { number in pristine.recordOffset(number).map { Int($0)..<Int($0) + recordSize } }
        let many = try NTFSInode(try pristine.entry(["many"]).identifier, mft: pristine.mft)
        for extent in try XCTUnwrap(try many.stream(NTFSAttribute.indexAllocation, name: "$I30", mft: pristine.mft)).volumeExtents {
            records += stride(from: Int(extent.lowerBound), to: Int(extent.upperBound), by: 4096).map { $0..<$0 + 4096 }
        }
        // The clusters of the compressed file (LZNT1 data).
        let compressed = try XCTUnwrap(try dataStream(pristine, ["packed", "text.txt"])).volumeExtents.flatMap { extent in
            stride(from: Int(extent.lowerBound), to: Int(extent.upperBound), by: 4096).map { $0..<$0 + 4096 }
        }
        let limit = min(memory.bytes.count, 4 << 20)
        let started = Date()
        var outcomes: [String: Int] = [:]
        var done = 0
        while done < mutations && Date().timeIntervalSince(started) < budget {
            done += 1
            // The window of bytes this mutation may touch, saved to be restored afterwards.
            let choice = random.next() % 10
            let window: Range<Int>
            if choice < 5, let record = records.randomElement(using: &random) {
                window = record
            } else if choice < 6, let cluster = compressed.randomElement(using: &random) {
                window = cluster
            } else if choice < 7 {
                window = 0..<512
            } else if choice < 8 {
                window = mft..<mft + 16 * recordSize
            } else {
                let start = Int(random.next() % UInt64(limit - 4096))
                window = start..<start + 4096
            }
            let saved = Array(memory.bytes[window])
            let mutate: (inout [UInt8]) -> Void = { bytes in Self.mutate(&bytes, in: 0..<bytes.count, using: &random) }
            // Inside a FILE or INDX record, half the time behind valid fixups, so that the
            // change reaches the parsers instead of failing the fixup check.
            if choice < 5, random.next() % 2 == 0, saved.le16(6) == UInt16(window.count / 512 + 1) {
                Self.rewriteRecord(memory, at: window.lowerBound, size: window.count, mutate)
            } else {
                var bytes = saved
                mutate(&bytes)
                memory.bytes.replaceSubrange(window, with: bytes)
            }
            let outcome = Self.exercise(memory)
            outcomes[outcome, default: 0] += 1
            memory.bytes.replaceSubrange(window, with: saved)
        }
        XCTAssertNil(outcomes["unexpected"], "\(outcomes)")
        XCTAssertGreaterThan(outcomes["ok", default: 0], 0)
        XCTAssertGreaterThan(done, 200, "too few mutations in the time budget")
        print("NTFS fuzz: \(done) mutations in \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Opens, lists and reads a (damaged) volume; "ok", "error" (PluginError) or "unexpected".
    static func exercise(_ source: BlockSource) -> String {
        do {
            let fs = try NTFSFileSystem(volume: source)
            var buffer = [UInt8](repeating: 0, count: 65536)
            var errors = 0
            func visit(_ path: [String], depth: Int) throws {
                for entry in try fs.list(path, includeSystemFiles: depth == 0).prefix(depth == 0 ? 32 : 12) {
                    do {
                        if entry.kind == .directory && depth < 1 {
                            try visit(path + [entry.name], depth: depth + 1)
                        } else if entry.kind == .file {
                            let count = Int(min(entry.size, 65536)), tail = Int(min(entry.size, 4096))
                            try buffer.withUnsafeMutableBytes { raw in
                                try fs.read(entry, at: 0, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<count]))
                                try fs.read(entry, at: entry.size - UInt64(tail), into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<tail]))
                            }
                            _ = try fs.volumeExtents(of: entry)
                            _ = try fs.entry(path + [entry.name])
                        }
                    } catch is PluginError {
                        errors += 1
                    }
                }
            }
            try visit([], depth: 0)
            return errors == 0 ? "ok" : "error"
        } catch is PluginError {
            return "error"
        } catch {
            print("NTFS fuzz: unexpected error \(error)")
            return "unexpected"
        }
    }

    /// 1–8 random changes inside `range` of `bytes`.
    static func mutate(_ bytes: inout [UInt8], in range: Range<Int>, using random: inout SeededGenerator) {
        guard !range.isEmpty else { return }
        for _ in 0..<(1 + Int(random.next() % 8)) {
            let at = range.lowerBound + Int(random.next() % UInt64(range.count))
            switch random.next() % 6 {
            case 0: bytes[at] ^= UInt8(1) << UInt8(random.next() % 8)
            case 1: bytes[at] = UInt8(truncatingIfNeeded: random.next())
            case 2: bytes[at] = [0x00, 0xFF, 0x7F, 0x80, 0x01][Int(random.next() % 5)]
            case 3: if at + 2 <= range.upperBound { bytes.putLE16([0, 0xFFFF, 0x8000, UInt16(truncatingIfNeeded: random.next())][Int(random.next() % 4)], at: at) }
            case 4: if at + 4 <= range.upperBound { bytes.putLE32([0, 0xFFFF_FFFF, 0x8000_0000, UInt32(truncatingIfNeeded: random.next() % 0x10000)][Int(random.next() % 4)], at: at) }
            default: if at + 8 <= range.upperBound { bytes.putLE64([0, UInt64.max, 1 << 63, random.next() % 0x100000][Int(random.next() % 4)], at: at) }
            }
        }
    }
}

// MARK: - Helpers

extension NTFSTests {
    /// Every entry below the root, by path ("/docs/a"), following directories (not links).
    func walk(_ fs: NTFSFileSystem) throws -> [String: FileSystemEntry] {
        var found: [String: FileSystemEntry] = [:]
        func visit(_ path: [String]) throws {
            for entry in try fs.list(path) {
                let full = path + [entry.name]
                XCTAssertNil(found["/" + full.joined(separator: "/")], "listed twice: \(full)")
                found["/" + full.joined(separator: "/")] = entry
                if entry.kind == .directory { try visit(full) }
            }
        }
        try visit([])
        return found
    }

    func readAll(_ fs: NTFSFileSystem, _ entry: FileSystemEntry, chunk: Int) throws -> [UInt8] {
        var content = [UInt8](repeating: 0, count: Int(entry.size))
        try content.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = min(chunk, raw.count - offset)
                try fs.read(entry, at: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: raw[offset..<offset + count]))
                offset += count
            }
        }
        return content
    }

    func dataStream(_ fs: NTFSFileSystem, _ path: [String]) throws -> NTFSStream? {
        try NTFSInode(try fs.entry(path).identifier, mft: fs.mft).stream(NTFSAttribute.data, mft: fs.mft)
    }

    func extentBytes(_ fs: NTFSFileSystem, _ path: [String]) throws -> UInt64 {
        try fs.volumeExtents(of: try fs.entry(path)).reduce(0) { $0 + UInt64($1.count) }
    }

    /// The part of sorted runs covering `range` (VCNs stay absolute).
    static func cut(_ runs: [NTFSRun], _ range: Range<UInt64>) -> [NTFSRun] {
        runs.compactMap { run in
            let start = max(run.vcn, range.lowerBound), stop = min(run.endVCN, range.upperBound)
            guard start < stop else { return nil }
            return NTFSRun(vcn: start, length: stop - start, lcn: run.lcn.map { $0 + start - run.vcn })
        }
    }

    /// Encodes runs as mapping pairs (LCN deltas from 0), with the terminating 0.
    static func encodeRuns(_ runs: [NTFSRun]) -> [UInt8] {
        func unsigned(_ value: UInt64) -> [UInt8] {
            var bytes: [UInt8] = [], rest = value
            repeat { bytes.append(UInt8(truncatingIfNeeded: rest)); rest >>= 8 } while rest != 0
            return bytes
        }
        func signed(_ value: Int64) -> [UInt8] {
            var bytes: [UInt8] = [], rest = value
            repeat {
                bytes.append(UInt8(truncatingIfNeeded: rest))
                rest >>= 8
            } while !((rest == 0 && bytes.last! & 0x80 == 0) || (rest == -1 && bytes.last! & 0x80 != 0))
            return bytes
        }
        var encoded: [UInt8] = []
        var previous: Int64 = 0
        for run in runs {
            let length = unsigned(run.length)
            if let lcn = run.lcn {
                let delta = signed(Int64(lcn) - previous)
                previous = Int64(lcn)
                encoded += [UInt8(delta.count << 4 | length.count)] + length + delta
            } else {
                encoded += [UInt8(length.count)] + length
            }
        }
        return encoded + [0]
    }

    /// Replaces the attributes of a fixed-up FILE record (lengths rounded up to 8, end marker,
    /// bytes in use).
    static func writeAttributes(_ attributes: [[UInt8]], into record: inout [UInt8]) {
        var offset = Int(record.le16(0x14))
        for var attribute in attributes {
            while attribute.count % 8 != 0 { attribute.append(0) }
            attribute.putLE32(UInt32(attribute.count), at: 4)
            record.replaceSubrange(offset..<offset + attribute.count, with: attribute)
            offset += attribute.count
        }
        record.putLE32(NTFSAttribute.end, at: offset)
        record.putLE32(0, at: offset + 4)
        record.putLE32(UInt32(offset + 8), at: 0x18)
        for index in offset + 8..<record.count { record[index] = 0 }
    }

    /// Rewrites a FILE or INDX record in place: removes its fixups, applies `modify`, puts the
    /// fixups back, so the change reaches the parser instead of tearing the record.
    static func rewriteRecord(_ volume: MemoryVolume, at offset: Int, size: Int, _ modify: (inout [UInt8]) -> Void) {
        var record = Array(volume.bytes[offset..<offset + size])
        let usa = Int(record.le16(4)), count = min(Int(record.le16(6)), size / 512 + 1)
        for index in 1..<max(count, 1) where usa + 2 * index + 1 < 512 {
            record[index * 512 - 2] = record[usa + 2 * index]
            record[index * 512 - 1] = record[usa + 2 * index + 1]
        }
        modify(&record)
        let usaAfter = Int(record.le16(4)), countAfter = min(Int(record.le16(6)), size / 512 + 1)
        for index in 1..<max(countAfter, 1) where usaAfter + 2 * index + 1 < 512 {
            record[usaAfter + 2 * index] = record[index * 512 - 2]
            record[usaAfter + 2 * index + 1] = record[index * 512 - 1]
            record[index * 512 - 2] = record[usaAfter]
            record[index * 512 - 1] = record[usaAfter + 1]
        }
        volume.bytes.replaceSubrange(offset..<offset + size, with: record)
    }

    /// Rewrites the first attribute record of `type` in MFT record `record`; `modify` gets the
    /// fixed-up record and the attribute's offset.
    static func patchAttribute(_ volume: MemoryVolume, fs: NTFSFileSystem, record: UInt64, type: UInt32,
                               _ modify: @escaping (inout [UInt8], Int) -> Void) throws {
        let attribute = try XCTUnwrap(try NTFSInode(record, mft: fs.mft).base.attributes.first { $0.type == type })
        let offset = Int(try XCTUnwrap(fs.recordOffset(record)))
        rewriteRecord(volume, at: offset, size: fs.boot.recordSize) { modify(&$0, attribute.offset) }
    }

    func assertOpen(_ source: BlockSource, throws code: PluginError.Code, containing text: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        assertError(code, text, file: file, line: line) { _ = try NTFSFileSystem(volume: source) }
    }

    func assertList(_ source: BlockSource, _ path: [String], throws code: PluginError.Code, containing text: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        assertError(code, text, file: file, line: line) { _ = try NTFSFileSystem(volume: source).list(path) }
    }

    func assertEntry(_ fs: NTFSFileSystem, _ path: [String], throws code: PluginError.Code, containing text: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        assertError(code, text, file: file, line: line) { _ = try fs.entry(path) }
    }

    func assertRead(_ fs: NTFSFileSystem, _ entry: FileSystemEntry, throws code: PluginError.Code, containing text: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        var buffer = [UInt8](repeating: 0, count: 16)
        assertError(code, text, file: file, line: line) { try buffer.withUnsafeMutableBytes { try fs.read(entry, at: 0, into: $0) } }
    }

    func assertError(_ code: PluginError.Code, _ text: String, file: StaticString, line: UInt, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error; expected \(code) containing \"\(text)\"", file: file, line: line)
        } catch let error as PluginError {
            XCTAssertEqual(error.code, code, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "\"\(error.message)\" does not contain \"\(text)\"", file: file, line: line)
            XCTAssertTrue(error.message.hasPrefix("NTFS: "), error.message, file: file, line: line)
        } catch {
            XCTFail("not a PluginError: \(error)", file: file, line: line)
        }
    }
}

/// A volume in memory, for damaging copies of an image.
final class MemoryVolume: BlockSource {
    var bytes: [UInt8]
    var size: UInt64 { UInt64(bytes.count) }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw PluginError(.invalid, "read of \(buffer.count) bytes at \(offset) passes the end (\(size) bytes)")
        }
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + buffer.count])) }
    }
}

// MARK: - The test tree

/// A tree of directories and files to put on a volume, as a manifest for ntfs_populate, with
/// the content every path must read back as.
struct NTFSTree {
    struct Node {
        var kind: FileSystemEntry.Kind
        var content: [UInt8]?
        var linkTarget: String?
        var times: (created: UInt64, modified: UInt64, accessed: UInt64)?
    }

    enum Operation {
        case mkdir(String)
        case file(String, [UInt8], sparseBlock: Int?)
        case stream(String, String, [UInt8])
        case link(String, String)
        case compress(String)
        case symlink(String, String)
        case dosName(String, String)
        case times(String, UInt64, UInt64, UInt64)
    }

    static let manyCount = 320
    static let smallManyCount = 150
    static let japaneseName = "日本語のファイル名.txt"
    static let emojiName = "emoji 😀🎉 ファイル.bin"
    /// 150 UTF-16 units of CJK and Greek text, plus ".txt".
    static let longName = String(repeating: "長い名前αβγ", count: 21) + "长.txt"

    private(set) var operations: [Operation] = []
    private(set) var nodes: [String: Node] = [:]

    mutating func mkdir(_ path: String) {
        operations.append(.mkdir(path))
        nodes[path] = Node(kind: .directory)
    }

    /// A file; with `sparseBlock`, all-zero blocks of that size are left as holes.
    mutating func file(_ path: String, _ content: [UInt8], sparseBlock: Int? = nil) {
        operations.append(.file(path, content, sparseBlock: sparseBlock))
        nodes[path] = Node(kind: .file, content: content)
    }

    mutating func apply(_ operation: Operation) {
        operations.append(operation)
        switch operation {
        case .link(let existing, let new): nodes[new] = nodes[existing]
        case .symlink(let path, let target): nodes[path] = Node(kind: .symlink, linkTarget: target)
        case .times(let path, let created, let modified, let accessed): nodes[path]?.times = (created, modified, accessed)
        default: break
        }
    }

    /// 4 KiB of random data, 4 KiB of zeros, and so on: written with 4 KiB sparse blocks, one
    /// run per cluster, a runlist too long for one MFT record ($ATTRIBUTE_LIST and extension
    /// records).
    static func alternating(clusters: Int, seed: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: clusters * 4096)
        let random = TestData.random(clusters / 2 * 4096, seed: seed)
        for index in 0..<clusters / 2 {
            bytes.replaceSubrange(index * 8192..<index * 8192 + 4096, with: random[index * 4096..<(index + 1) * 4096])
        }
        return bytes
    }

    static func text(_ seed: Int, bytes: Int) -> [UInt8] {
        var text = ""
        var line = 0
        while text.utf8.count < bytes {
            text += "line \(line) of file \(seed): the quick brown fox jumps over the lazy dog\n"
            line += 1
        }
        return Array(text.utf8.prefix(bytes))
    }

    /// The full tree: nesting, a 320-entry directory, Unicode names, empty / tiny / 10 MiB /
    /// sparse / many-run / compressed files, hard links, a named stream, a symbolic link, a
    /// DOS alias and set times.
    static func full() -> NTFSTree {
        var tree = NTFSTree()
        for directory in ["/docs", "/docs/a", "/docs/a/b", "/docs/a/b/c", "/docs/a/b/c/d", "/docs/a/b/c/d/e", "/many",
                          "/unicode", "/links", "/frag", "/compressed", "/LongName"] {
            tree.mkdir(directory)
        }
        tree.file("/docs/readme.txt", text(1, bytes: 1500))
        tree.file("/docs/a/b/c/deep.txt", text(2, bytes: 300))
        for index in 0..<manyCount {
            tree.file(String(format: "/many/file-%03d.txt", index), text(index, bytes: 20 + index * 13 % 2000))
        }
        tree.file("/" + japaneseName, Array("こんにちは\n".utf8))
        tree.file("/unicode/" + japaneseName, text(3, bytes: 100))
        tree.file("/unicode/" + emojiName, TestData.random(5000, seed: 4))
        tree.file("/unicode/" + longName, text(5, bytes: 50))
        tree.file("/unicode/Ünïcödé Çase.txt", text(6, bytes: 10))
        tree.file("/empty.txt", [])
        tree.file("/tiny.txt", Array("hello, ntfs\n".utf8))
        tree.apply(.stream("/tiny.txt", "alt", Array("alternate data stream\n".utf8)))
        tree.file("/big.bin", TestData.random(10 << 20, seed: 7))
        var sparse = [UInt8](repeating: 0, count: 6 << 20)
        sparse.replaceSubrange((1 << 20)..<(1 << 20) + 100_000, with: TestData.random(100_000, seed: 8))
        sparse.replaceSubrange(sparse.count - 5000..<sparse.count, with: TestData.random(5000, seed: 9))
        tree.file("/sparse.bin", sparse, sparseBlock: 65536)
        tree.file("/links/original.txt", text(10, bytes: 2000))
        tree.apply(.link("/links/original.txt", "/links/second.txt"))
        tree.apply(.link("/links/original.txt", "/docs/third.txt"))
        tree.file("/frag/a.bin", alternating(clusters: 600, seed: 11), sparseBlock: 4096)
        tree.file("/frag/b.bin", TestData.random(1_200_000, seed: 12))
        tree.apply(.compress("/compressed"))
        tree.file("/compressed/text.txt", text(13, bytes: 400_000))
        tree.file("/compressed/random.bin", TestData.random(150_000, seed: 14))
        tree.file("/compressed/zeros.bin", [UInt8](repeating: 0, count: 200_000) + Array("end".utf8))
        tree.file("/compressed/small.txt", text(15, bytes: 100))
        tree.file("/LongName/A Long File Name.txt", text(16, bytes: 64))
        tree.apply(.dosName("/LongName/A Long File Name.txt", "ALONGF~1.TXT"))
        tree.apply(.symlink("/symlink-to-tiny", "tiny.txt"))
        tree.apply(.times("/docs/readme.txt", 130_000_000_001_230_000, 131_000_000_004_560_000, 132_000_000_000_000_000))
        tree.apply(.times("/big.bin", 125_911_584_000_000_000, 133_000_000_000_010_000, 133_100_000_007_890_000))
        return tree
    }

    /// The small tree for damage and fuzzing: a 150-entry directory (INDX blocks), a file with an attribute
    /// list (many runs), a plain non-resident file, a compressed file, a sparse file.
    static func small() -> NTFSTree {
        var tree = NTFSTree()
        tree.mkdir("/many")
        for index in 0..<smallManyCount {
            tree.file(String(format: "/many/f%03d", index), text(index, bytes: 10 + index % 50))
        }
        tree.file("/plain.bin", TestData.random(300_000, seed: 21))
        tree.mkdir("/frag")
        tree.file("/frag/a.bin", alternating(clusters: 600, seed: 22), sparseBlock: 4096)
        tree.mkdir("/packed")
        tree.apply(.compress("/packed"))
        tree.file("/packed/text.txt", text(24, bytes: 150_000))
        var sparse = [UInt8](repeating: 0, count: 1 << 20)
        sparse.replaceSubrange(700_000..<710_000, with: TestData.random(10_000, seed: 25))
        tree.file("/sparse.bin", sparse, sparseBlock: 65536)
        return tree
    }

    /// Writes the host files and the manifest under `hostDirectory`; returns the manifest path.
    func writeManifest(hostDirectory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: hostDirectory, withIntermediateDirectories: true)
        var counter = 0
        func host(_ bytes: [UInt8]) throws -> String {
            counter += 1
            let path = "\(hostDirectory)/\(counter)"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        var lines: [String] = []
        for operation in operations {
            switch operation {
            case .mkdir(let path): lines.append("mkdir\t\(path)")
            case .file(let path, let content, let block?): lines.append("sparse\t\(path)\t\(try host(content))\t\(block)")
            case .file(let path, let content, nil): lines.append("file\t\(path)\t\(try host(content))")
            case .stream(let path, let name, let content): lines.append("stream\t\(path)\t\(name)\t\(try host(content))")
            case .link(let existing, let new): lines.append("link\t\(existing)\t\(new)")
            case .compress(let path): lines.append("compress\t\(path)")
            case .symlink(let path, let target): lines.append("symlink\t\(path)\t\(target)")
            case .dosName(let path, let short): lines.append("dosname\t\(path)\t\(short)")
            case .times(let path, let created, let modified, let accessed): lines.append("times\t\(path)\t\(created)\t\(modified)\t\(accessed)")
            }
        }
        let manifest = "\(hostDirectory)/manifest"
        try (lines.joined(separator: "\n") + "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        return manifest
    }
}
