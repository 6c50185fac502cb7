import Foundation
import TestSupport
import XCTest
@testable import Host
import PluginAPI

/// The chunk blob and index formats, and the store's reading and writing of them.
final class ChunkStoreTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try TestSupport.temporaryDirectory(self)
    }

    func storeWithChunk(_ plain: [UInt8], keyFile: String? = nil, chunkSize: Int = 1 << 20) throws -> (ChunkStore, ChunkDigest) {
        let store = try ChunkStore.open(directory: directory + "/store", keyFile: keyFile, chunkSize: chunkSize)
        let codec = try store.makeCodec()
        let digest = plain.withUnsafeBytes { codec.digest($0) }
        let batch = ChunkCommitBatch(store: store)
        XCTAssertTrue(batch.claim(digest))
        let written = try plain.withUnsafeBytes { try codec.writeTemporary($0, digest: digest) }
        try batch.add(temporary: written.path, digest: digest, blob: written.blob)
        try batch.publish()
        XCTAssertTrue(store.contains(digest))
        XCTAssertFalse(batch.claim(digest), "a stored chunk is never written twice")
        return (store, digest)
    }

    func readBack(_ store: ChunkStore, _ digest: ChunkDigest, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try store.makeCodec().read(digest, into: $0) }
        return out
    }

    func testCompressibleChunkRoundTripsCompressed() throws {
        let plain = [UInt8](repeating: 7, count: 1 << 20)
        let (store, digest) = try storeWithChunk(plain)
        XCTAssertEqual(digest, Crypto.sha256(plain), "unencrypted digests are plain SHA-256")
        XCTAssertEqual(try readBack(store, digest, count: plain.count), plain)
        let size = try FileManager.default.attributesOfItem(atPath: store.chunkPath(digest))[.size] as! Int
        XCTAssertLessThan(size, 4096)
        let header = try Data(contentsOf: URL(fileURLWithPath: store.chunkPath(digest))).prefix(48)
        XCTAssertEqual([UInt8](header.prefix(4)), Array("DPMC".utf8))
        XCTAssertEqual(header[5], 1, "zstd")
    }

    func testRandomChunkIsStoredUncompressed() throws {
        let plain = TestData.random(1 << 20, seed: 3)
        let (store, digest) = try storeWithChunk(plain)
        let blob = try Data(contentsOf: URL(fileURLWithPath: store.chunkPath(digest)))
        XCTAssertEqual(blob[5], 0, "incompressible data is not compressed")
        XCTAssertEqual(blob.count, 48 + plain.count)
        XCTAssertEqual(try readBack(store, digest, count: plain.count), plain)
    }

    func testEncryptedStoreKeysDigestsAndRefusesWrongKeys() throws {
        let keyFile = directory + "/key"
        try StoreKeys.generate(keyFile)
        let plain = [UInt8](repeating: 9, count: 300_000)
        let (store, digest) = try storeWithChunk(plain, keyFile: keyFile)
        XCTAssertNotEqual(digest, Crypto.sha256(plain), "an encrypted store keys its digests")
        XCTAssertEqual(try readBack(store, digest, count: plain.count), plain)
        let blob = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store.chunkPath(digest))))
        XCTAssertEqual(blob[6], 1, "sealed with AES-256-GCM")
        XCTAssertNil(blob.firstRange(of: [UInt8](repeating: 9, count: 64)), "no plain text on disk")

        XCTAssertThrowsError(try ChunkStore.open(directory: directory + "/store")) { error in
            XCTAssertTrue("\(error)".contains("is encrypted; pass its key file"), "\(error)")
        }
        let otherKey = directory + "/other"
        try StoreKeys.generate(otherKey)
        XCTAssertThrowsError(try ChunkStore.open(directory: directory + "/store", keyFile: otherKey)) { error in
            XCTAssertTrue("\(error)".contains("does not belong to the store"), "\(error)")
        }
        XCTAssertThrowsError(try StoreKeys.generate(keyFile), "an existing key is never overwritten")
    }

    func testDamageIsDetectedAndNamed() throws {
        let plain = TestData.random(100_000, seed: 5)
        let (store, digest) = try storeWithChunk(plain)
        let path = store.chunkPath(digest)
        var blob = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        for (offset, expectation) in [(2, "bad magic"), (10, "header checksum"), (blob.count - 1, "does not match its digest")] {
            var damaged = blob
            damaged[offset] ^= 0x01
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try readBack(store, digest, count: plain.count)) { error in
                XCTAssertEqual((error as? HostError)?.code, .corrupt)
                XCTAssertTrue("\(error)".contains(digest.hex) && "\(error)".contains(expectation), "\(error)")
            }
        }
        blob.removeLast(10)
        try Data(blob).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try readBack(store, digest, count: plain.count))
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try readBack(store, digest, count: plain.count)) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
    }

    func sampleIndex() -> RecoveryPointIndex {
        let digest = Crypto.sha256([1, 2, 3])
        let manifest = RecoveryPointIndex.Manifest(
            storeId: "s", datasource: "ds", datasourceName: "name", provider: "p", rp: "rp1", time: Date(timeIntervalSince1970: 1_800_000_000),
            kind: .full, consistency: .crash, reason: "r", pauseMs: 3, token: "t", parentRp: nil, metadata: .object(["k": .string("v")]),
            streams: [.init(name: "disk0", kind: .block, size: 10 << 20), .init(name: "dump", kind: .file, size: 700)])
        return RecoveryPointIndex(manifest: manifest, streams: [
            .init(size: 10 << 20, chunking: .fixed, chunkSize: 4 << 20, entries: [
                .init(digest: digest, length: 4 << 20, flag: .data), .zero(4 << 20),
                .init(digest: .zero, length: 2 << 20, flag: .excluded)]),
            .init(size: 700, chunking: .contentDefined, chunkSize: 0, entries: [
                .init(digest: digest, length: 300, flag: .data), .init(digest: digest, length: 400, flag: .data)]),
        ])
    }

    func testIndexRoundTripsAndLocatesOffsets() throws {
        let index = sampleIndex()
        let decoded = try RecoveryPointIndex.decode(try index.encode(), what: "sample")
        XCTAssertEqual(decoded.manifest.rp, "rp1")
        XCTAssertEqual(decoded.manifest.metadata, .object(["k": .string("v")]))
        XCTAssertEqual(decoded.streams.map(\.entries), index.streams.map(\.entries))
        XCTAssertEqual(decoded.streams[0].entryIndex(containing: (8 << 20) + 5), 2)
        XCTAssertEqual(decoded.streams[1].entryIndex(containing: 299), 0)
        XCTAssertEqual(decoded.streams[1].entryIndex(containing: 300), 1)
        XCTAssertEqual(decoded.streams[1].start(ofEntry: 1), 300)
        XCTAssertNil(decoded.streams[1].entryIndex(containing: 700))
        XCTAssertEqual(decoded.dataDigests.count, 1)
    }

    func testEveryFlippedByteOfAnIndexIsRefused() throws {
        let bytes = try sampleIndex().encode()
        for offset in stride(from: 0, to: bytes.count, by: 7) {
            var damaged = bytes
            damaged[offset] ^= 0x20
            XCTAssertThrowsError(try RecoveryPointIndex.decode(damaged, what: "x"), "flip at \(offset) went unnoticed")
        }
        for length in [0, 10, 64, bytes.count - 1] {
            XCTAssertThrowsError(try RecoveryPointIndex.decode(Array(bytes.prefix(length)), what: "x"))
        }
    }

    func testContentDefinedChunksResynchroniseAfterAnInsertion() throws {
        let data = TestData.random(12 << 20, seed: 8)
        var shifted = data
        shifted.insert(contentsOf: [1, 2, 3, 4, 5], at: 3 << 20)
        func cuts(_ bytes: [UInt8]) -> [[UInt8]] {
            var pieces: [[UInt8]] = []
            var start = 0
            bytes.withUnsafeBytes { raw in
                while start < raw.count, let cut = ContentDefinedChunker.cut(UnsafeRawBufferPointer(rebasing: raw[start...]), atEnd: true) {
                    pieces.append(Array(raw[start..<start + cut]))
                    start += cut
                }
            }
            return pieces
        }
        let before = cuts(data)
        let after = cuts(shifted)
        XCTAssertEqual(before.reduce(0) { $0 + $1.count }, data.count)
        XCTAssertTrue(before.allSatisfy { $0.count <= ContentDefinedChunker.maximum })
        XCTAssertTrue(before.dropLast().allSatisfy { $0.count >= ContentDefinedChunker.minimum })
        XCTAssertGreaterThan(before.count, 5)
        let shared = Set(before.map { Crypto.sha256($0) }).intersection(after.map { Crypto.sha256($0) })
        XCTAssertGreaterThanOrEqual(shared.count, before.count - 2, "an insertion changes only the chunks around it")
    }

    func testChunkPlanReadsOnlyDataAndReusesUnchangedChunks() {
        let size: UInt64 = 20 << 20
        let chunk = 4 << 20
        let extents = [Extent(offset: 0, length: 1 << 20), Extent(offset: 1 << 20, length: 7 << 20, flag: .zero),
                       Extent(offset: 8 << 20, length: 4 << 20, flag: .excluded), Extent(offset: 13 << 20, length: 7 << 20)]
        let fresh = ChunkPlan(chunkSize: chunk, streamSize: size, extents: extents, changed: nil, previous: nil)
        XCTAssertEqual(fresh.actions, [.read([0..<(1 << 20)]), .zero, .excluded, .read([(1 << 20)..<(4 << 20)]), .read([0..<(4 << 20)])])
        let previous = (0..<5).map { RecoveryPointIndex.Entry(digest: Crypto.sha256([UInt8($0)]), length: UInt32(chunk), flag: .data) }
        let tracked = ChunkPlan(chunkSize: chunk, streamSize: size, extents: extents, changed: [Extent(offset: 17 << 20, length: 10)],
                                previous: previous)
        XCTAssertEqual(tracked.actions, [.reuse(previous[0]), .reuse(previous[1]), .reuse(previous[2]), .reuse(previous[3]),
                                          .read([0..<(4 << 20)])])
    }

    func testDurationsAndDirectoryNames() throws {
        XCTAssertEqual(try Duration.parse("90s", what: "x"), 90)
        XCTAssertEqual(try Duration.parse("24h", what: "x"), 86_400)
        XCTAssertEqual(try Duration.parse("0", what: "x"), 0)
        XCTAssertThrowsError(try Duration.parse("soon", what: "--grace"))
        XCTAssertEqual(RecoveryPointID.directoryName(forDataSource: "../etc/x"), "%2E.%2Fetc%2Fx")
        XCTAssertEqual(RecoveryPointID.directoryName(forDataSource: "vm-1.a"), "vm-1.a")
    }
}

/// The hand-written ISO-8601 timestamps of the catalog and the ABI.
final class ISOTimeTests: XCTestCase {
    func testRoundTripsAndAgreesWithFoundation() {
        for seconds in [0.0, 1_700_000_000.123, 1_800_000_000.999_6, 951_782_400.5, 4_102_444_799.001] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = ISOTime.string(date)
            let parsed = ISOTime.date(text)
            XCTAssertNotNil(parsed, text)
            XCTAssertEqual(parsed?.timeIntervalSince1970 ?? 0, (seconds * 1000).rounded() / 1000, accuracy: 0.0005, text)
            let foundation = ISO8601DateFormatter()
            foundation.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            XCTAssertEqual(foundation.date(from: text)?.timeIntervalSince1970 ?? -1, parsed?.timeIntervalSince1970 ?? -2, accuracy: 0.0005)
        }
        XCTAssertEqual(ISOTime.string(Date(timeIntervalSince1970: 1_700_000_000)), "2023-11-14T22:13:20.000Z")
        XCTAssertEqual(ISOTime.date("2023-11-14T22:13:20Z")?.timeIntervalSince1970, 1_700_000_000)
        XCTAssertEqual(ISOTime.date("2023-11-15T00:13:20+02:00")?.timeIntervalSince1970, 1_700_000_000)
        for bad in ["", "2023-11-14", "2023-13-14T22:13:20Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z", "x023-11-14T22:13:20Z",
                    "2023-11-14T22:13:20Zjunk"] {
            XCTAssertNil(ISOTime.date(bad), bad)
        }
    }
}
