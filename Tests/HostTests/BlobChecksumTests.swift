import Foundation
import TestSupport
import XCTest
@testable import Host

/// BlobChecksum is XXH64 as xxHash defines it (checked against xxhsum, an independent
/// implementation), and `compareStored` refuses a stored blob that differs from the one written.
final class BlobChecksumTests: XCTestCase {
    func xxh64(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { BlobChecksum.xxh64($0) } }

    func testKnownValues() {
        XCTAssertEqual(xxh64([]), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(xxh64(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
    }

    /// Every tail path (32-byte stripes, 8-, 4- and 1-byte remainders) against xxhsum.
    func testMatchesXxhsum() throws {
        try TestSupport.require("xxhsum")
        let directory = try TestSupport.temporaryDirectory(self)
        for length in [1, 3, 4, 7, 8, 31, 32, 33, 63, 100, 4096 + 13, 1 << 20] {
            let bytes = TestData.random(length, seed: UInt64(length))
            let path = directory + "/sample-\(length)"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let result = try runProcess(["xxhsum", "-H1", path])
            XCTAssertEqual(result.status, 0, result.stderr)
            let expected = String(result.stdout.prefix(16))
            XCTAssertEqual(String(format: "%016llx", xxh64(bytes)), expected, "length \(length)")
        }
    }

    func testCompareStoredFindsAChangedBlobAndAcceptsTheWrittenOne() throws {
        let directory = try TestSupport.temporaryDirectory(self)
        let store = try ChunkStore.open(directory: directory + "/store", chunkSize: 1 << 20)
        let codec = try store.makeCodec()
        let plain = TestData.random(1 << 20, seed: 9)
        let digest = plain.withUnsafeBytes { codec.digest($0) }
        let batch = ChunkCommitBatch(store: store)
        XCTAssertTrue(batch.claim(digest))
        let written = try plain.withUnsafeBytes { try codec.writeTemporary($0, digest: digest, checksum: true) }
        XCTAssertNotNil(written.blob.checksum)
        try batch.add(temporary: written.path, digest: digest, blob: written.blob)
        try batch.publish()
        XCTAssertEqual(batch.written[digest], written.blob, "the batch keeps the checksummed blob for the check")

        try codec.compareStored(digest, with: written.blob)
        XCTAssertEqual(codec.storageReads.total, 1)

        try TestData.write([0x5A], to: store.chunkPath(digest), at: 1000)
        XCTAssertThrowsError(try codec.compareStored(digest, with: written.blob)) { error in
            XCTAssertEqual((error as? HostError)?.code, .corrupt)
            XCTAssertTrue(String(describing: error).contains(digest.hex), "\(error)")
        }
        var shorter = written.blob
        shorter.bytes -= 1
        XCTAssertThrowsError(try codec.compareStored(digest, with: shorter)) { error in
            XCTAssertTrue(String(describing: error).contains("were written"), "\(error)")
        }
    }
}
