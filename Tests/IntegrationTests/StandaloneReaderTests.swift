import Foundation
import TestSupport
import XCTest

/// `dpm-restore-standalone`, a reader written from the format documentation alone, restores
/// recovery points that the built `dpm` wrote through the C example plugin, byte for byte,
/// from the store's files without the catalog; and refuses damage and wrong keys.
final class StandaloneReaderTests: XCTestCase {
    var directory = ""
    var plugins = ""
    var files = ""
    var data = ""
    var store: String { data + "/store" }
    var image: String { files + "/disk.img" }
    let reader = BuiltProducts.directory + "/dpm-restore-standalone"
    /// 40 MiB and a bit, so the last fixed-size chunk is short.
    let imageSize = 40 << 20 + 12_345

    /// A recovery point: its id, its index path relative to the store, and a copy of the image it holds.
    struct Point { var id: String; var index: String; var copy: String }

    override func setUpWithError() throws {
        directory = try TestSupport.temporaryDirectory(self)
        plugins = directory + "/plugins"
        files = directory + "/files"
        data = directory + "/data"
        for folder in [plugins, files] { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try TestSupport.compilePlugin(source: TestSupport.repositoryRoot + "/examples/c-plugin/example_plugin.c",
                                      output: plugins + "/libExampleFiles.so")
    }

    // MARK: - helpers

    /// Deterministic pseudo-random bytes (SplitMix64).
    func randomBytes(_ count: Int, seed: UInt64) -> Data {
        var state = seed
        var words = [UInt64](repeating: 0, count: (count + 7) / 8)
        for index in words.indices {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            words[index] = z ^ (z >> 31)
        }
        return words.withUnsafeBytes { Data($0.prefix(count)) }
    }

    func pattern(_ count: Int, _ text: String) -> Data {
        var out = Data(capacity: count)
        while out.count < count { out.append(contentsOf: text.utf8) }
        return out.prefix(count)
    }

    func write(_ bytes: Data, at offset: Int, to path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: bytes)
    }

    /// A sparse image: random data, repeated patterns, zeros written as data and holes, at
    /// boundaries that do and do not fall on the 4 MiB chunks.
    func makeImage() throws {
        FileManager.default.createFile(atPath: image, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        try handle.truncate(atOffset: UInt64(imageSize))
        try handle.close()
        let mib = 1 << 20
        try write(randomBytes(6 * mib, seed: 1), at: 0, to: image)
        try write(pattern(6 * mib, "dpm repeated pattern 0123456789\n"), at: 8 * mib, to: image)
        try write(randomBytes(mib + 777, seed: 2), at: 17 * mib + 4321, to: image)
        try write(Data(count: 2 * mib), at: 19 * mib, to: image)  // zeros stored as data
        try write(randomBytes(2 * mib, seed: 3), at: 24 * mib, to: image)
        try write(pattern(3 * mib, String(repeating: "\u{1}\u{2}\u{3}", count: 1365) + "x"), at: 33 * mib, to: image)
        try write(randomBytes(5000, seed: 4), at: imageSize - 5000, to: image)
    }

    /// Changes part of the image: new data in a pattern and in a hole, and a data chunk zeroed.
    func modifyImage() throws {
        let mib = 1 << 20
        try write(randomBytes(2 * mib, seed: 5), at: 9 * mib + 100, to: image)
        try write(randomBytes(mib, seed: 6), at: 30 * mib, to: image)
        try write(Data(count: 4 * mib), at: 24 * mib, to: image)
    }

    func dpm(_ arguments: [String]) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: data, environment: ["DPM_PLUGIN_PATH": plugins], timeout: 120)
        XCTAssertEqual(result.status, 0, "dpm \(arguments.joined(separator: " ")): \(result.stderr)")
        return result
    }

    func pointIDs() throws -> [String: String] {
        let object = try XCTUnwrap(try dpm(["rp", "list", "disk.img", "--json"]).json() as? [String: Any])
        let points = try XCTUnwrap(object["recovery_points"] as? [[String: Any]])
        var ids: [String: String] = [:]
        for point in points { ids[try XCTUnwrap(point["id"] as? String)] = try XCTUnwrap(point["index_path"] as? String) }
        return ids
    }

    /// Backs the image up twice (changing it in between); returns both points, oldest first.
    func backUpTwice(keyFile: String? = nil) throws -> [Point] {
        try makeImage()
        _ = try dpm(["config", "set", "example-files.directory", files])
        if let keyFile { _ = try dpm(["config", "set", "store.key_file", keyFile]) }
        var points: [Point] = []
        for version in 1...2 {
            if version == 2 { try modifyImage() }
            let copy = "\(directory)/version\(version).img"
            try FileManager.default.copyItem(atPath: image, toPath: copy)
            guard try dpm(["backup", "disk.img"]).status == 0 else { throw CocoaError(.fileWriteUnknown) }
            let known = Set(points.map(\.id))
            let new = try pointIDs().filter { !known.contains($0.key) }
            XCTAssertEqual(new.count, 1)
            let (id, index) = try XCTUnwrap(new.first)
            points.append(Point(id: id, index: index, copy: copy))
        }
        return points
    }

    func restore(_ arguments: [String]) throws -> CommandResult {
        try runProcess([reader, store] + arguments, timeout: 60)
    }

    func assertRestores(_ point: Point, extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let output = "\(directory)/restored-\(point.id).img"
        let result = try restore(["--point", point.index, "--output", output] + extra)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        let restored = try Data(contentsOf: URL(fileURLWithPath: output))
        XCTAssertEqual(restored.count, imageSize, file: file, line: line)
        XCTAssertTrue(restored == (try Data(contentsOf: URL(fileURLWithPath: point.copy))),
                      "\(point.id) differs from the image it was taken of", file: file, line: line)
        var status = stat()
        XCTAssertEqual(stat(output, &status), 0)
        XCTAssertLessThan(Int(status.st_blocks) * 512, imageSize, "the restored file should be sparse", file: file, line: line)
        try FileManager.default.removeItem(atPath: output)
    }

    /// Flips one bit of a file at `offset` (negative: from the end).
    func flip(_ path: String, at offset: Int) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let at = offset >= 0 ? offset : bytes.count + offset
        bytes[at] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    /// The largest chunk file: the incompressible first 4 MiB, which both points reference.
    func largestChunk() throws -> String {
        let chunks = store + "/chunks"
        var best = (path: "", size: -1)
        for case let relative as String in try XCTUnwrap(FileManager.default.enumerator(atPath: chunks)) {
            let path = chunks + "/" + relative
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            let size = attributes[.size] as? Int ?? 0
            if attributes[.type] as? FileAttributeType == .typeRegular && size > best.size { best = (path, size) }
        }
        return best.path
    }

    // MARK: - tests

    func testRestoresBothPointsOfAPlainStoreByteForByte() throws {
        let points = try backUpTwice()
        for point in points { try assertRestores(point) }

        let list = try restore(["--list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        for point in points { XCTAssertTrue(list.stdout.contains(point.index) && list.stdout.contains("rp \(point.id)"), list.stdout) }
        XCTAssertTrue(list.stdout.contains("datasource disk.img"), list.stdout)
        XCTAssertTrue(list.stdout.contains("\(imageSize) bytes"), list.stdout)

        let latest = "\(directory)/latest.img"
        XCTAssertEqual(try restore(["--latest", "disk.img", "--output", latest]).status, 0)
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: latest)) == Data(contentsOf: URL(fileURLWithPath: points[1].copy)))
        XCTAssertEqual(try restore(["--point", points[0].index, "--stream", "1", "--output", latest]).status, 1)
    }

    func testRestoresAnEncryptedStoreWithItsKeyAndRefusesAWrongKey() throws {
        let key = directory + "/store.key", wrong = directory + "/wrong.key"
        for (path, seed) in [(key, UInt64(7)), (wrong, UInt64(8))] {
            let hex = randomBytes(32, seed: seed).map { String(format: "%02x", $0) }.joined()
            try (hex + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        let points = try backUpTwice(keyFile: key)
        let config = try String(contentsOfFile: store + "/config.json", encoding: .utf8)
        XCTAssertTrue(config.contains("aes-256-gcm"), config)
        for point in points { try assertRestores(point, extra: ["--key-file", key]) }

        let output = directory + "/refused.img"
        let missing = try restore(["--point", points[0].index, "--output", output])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("encrypted"), missing.stderr)
        let refused = try restore(["--point", points[0].index, "--key-file", wrong, "--output", output])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains(wrong) && refused.stderr.contains("not the key"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    }

    func testADamagedChunkIsRefusedNamingIt() throws {
        let points = try backUpTwice()
        let chunk = try largestChunk()
        let output = directory + "/damaged.img"
        for (offset, problem) in [(48 + 1_000_000, "SHA-256"), (10, "CRC-32")] {
            try flip(chunk, at: offset)
            for point in points {
                let result = try restore(["--point", point.index, "--output", output])
                XCTAssertEqual(result.status, 1, "\(point.id) with \(problem) damage: \(result.stderr)")
                XCTAssertTrue(result.stderr.contains(chunk) && result.stderr.contains(problem), result.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: output), "no partial output is left behind")
            }
            try flip(chunk, at: offset)
        }
        try assertRestores(points[0])
    }

    func testADamagedIndexIsRefusedNamingIt() throws {
        let points = try backUpTwice()
        let index = store + "/" + points[0].index
        try flip(index, at: 200)
        let result = try restore(["--point", points[0].index, "--output", directory + "/damaged.img"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains(index) && result.stderr.contains("SHA-256"), result.stderr)
        let list = try restore(["--list"])
        XCTAssertEqual(list.status, 1)
        XCTAssertTrue(list.stderr.contains(index), list.stderr)
        XCTAssertTrue(list.stdout.contains(points[1].id), "the intact point is still listed: \(list.stdout)")
        try assertRestores(points[1])
    }

    func testUsageErrorsAndHelp() throws {
        let help = try runProcess([reader, "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("usage: dpm-restore-standalone"), help.stdout)
        for arguments in [[], [directory], [directory, "--list", "--latest", "x"], [directory, "--bogus"],
                          [directory, "--point"], [directory, "--latest", "x", "--stream", "two"]] {
            let result = try runProcess([reader] + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
        }
        let notAStore = try runProcess([reader, directory, "--list"])
        XCTAssertEqual(notAStore.status, 1)
        XCTAssertTrue(notAStore.stderr.contains(directory + "/config.json"), notAStore.stderr)
    }
}
