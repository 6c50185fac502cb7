import Foundation
import PaxArchive
import TestSupport
import XCTest

/// The pax writer and reader against GNU tar: what dpm writes, tar lists and extracts
/// byte for byte; what tar writes, dpm reads back.
final class PaxArchiveTests: XCTestCase {
    /// Members with names that need the ustar prefix, an extended header, non-ASCII text and
    /// no data, and data sizes around the 512-byte block.
    let members: [(String, [UInt8])] = [
        ("dpm/ds-1/20261204-210000-ab12/ARCHIVE.json", Array("{\"format\":\"dpm-tier-archive\"}".utf8)),
        ("dpm/ds-1/20261204-210000-ab12/chunks/" + String(repeating: "ab", count: 32) + ".zst", TestData.random(4097, seed: 1)),
        ("dpm/" + String(repeating: "long-folder-name/", count: 12) + "deep file.bin", TestData.random(512, seed: 2)),
        ("dpm/ünïcödé/ファイル.txt", Array("non-ASCII names go into an extended header\n".utf8)),
        ("dpm/empty", []),
        ("dpm/one-byte", [7]),
    ]

    func writeArchive(to path: String) throws {
        var bytes: [UInt8] = []
        let writer = PaxWriter(pieceSize: 4096) { bytes += $0 }
        for (name, data) in members {
            try writer.add(TarHeader(path: name, size: 0, mtime: 1_796_418_403), data)
        }
        try writer.finish()
        XCTAssertEqual(UInt64(bytes.count), writer.bytesWritten)
        XCTAssertEqual(bytes.count % 512, 0)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func testGNUTarListsAndExtractsWhatDPMWrites() throws {
        try TestSupport.require("tar")
        let folder = try TestSupport.temporaryDirectory(self)
        try writeArchive(to: folder + "/a.tar")
        let listing = try TestSupport.run(["tar", "-tf", folder + "/a.tar"])
        XCTAssertEqual(listing.status, 0, listing.output)
        XCTAssertEqual(listing.output.split(separator: "\n").map(String.init), members.map(\.0))
        XCTAssertFalse(listing.output.contains("warning"), listing.output)
        try FileManager.default.createDirectory(atPath: folder + "/out", withIntermediateDirectories: true)
        let extract = try TestSupport.run(["tar", "-xf", folder + "/a.tar", "-C", folder + "/out"])
        XCTAssertEqual(extract.status, 0, extract.output)
        for (name, data) in members {
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/out/" + name))), data, name)
        }
        let verbose = try TestSupport.run(["tar", "-tvf", folder + "/a.tar", members[0].0])
        XCTAssertTrue(verbose.output.contains("2026-12-04"), "mtime survives: \(verbose.output)")
    }

    func testReaderReadsWhatGNUTarWritesAndWhatDPMWrites() throws {
        try TestSupport.require("tar")
        let folder = try TestSupport.temporaryDirectory(self)
        for (name, data) in members {
            let path = folder + "/tree/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(data).write(to: URL(fileURLWithPath: path))
        }
        let create = try TestSupport.run(["tar", "--format=posix", "-cf", folder + "/gnu.tar", "-C", folder + "/tree"] + members.map(\.0))
        XCTAssertEqual(create.status, 0, create.output)
        try writeArchive(to: folder + "/dpm.tar")
        for archive in ["gnu.tar", "dpm.tar"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/" + archive)))
            // Fed in awkward pieces, so every state boundary is crossed mid-feed.
            let read = try readAll(bytes, pieces: [1, 511, 7, 4096, 3])
            XCTAssertEqual(read.map(\.0), members.map(\.0), archive)
            XCTAssertEqual(read.map(\.1), members.map(\.1), archive)
        }
    }

    func readAll(_ bytes: [UInt8], pieces: [Int]) throws -> [(String, [UInt8])] {
        let reader = PaxReader()
        var out: [(String, [UInt8])] = []
        reader.onMember = { out.append(($0.path, [])) }
        reader.onData = { out[out.count - 1].1 += $0 }
        var position = 0, turn = 0
        while position < bytes.count {
            let take = min(pieces[turn % pieces.count], bytes.count - position)
            try bytes[position..<position + take].withUnsafeBytes { try reader.feed($0) }
            position += take
            turn += 1
        }
        try reader.finish()
        XCTAssertTrue(reader.ended)
        return out
    }

    func testDamageIsReportedWithItsOffset() throws {
        let folder = try TestSupport.temporaryDirectory(self)
        try writeArchive(to: folder + "/a.tar")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/a.tar")))
        // Truncated: no end-of-archive marker.
        XCTAssertThrowsError(try readAll(Array(bytes[0..<2048]), pieces: [512])) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        // A flipped byte in the first header breaks its checksum.
        bytes[10] ^= 0x40
        XCTAssertThrowsError(try readAll(bytes, pieces: [100_000])) { error in
            XCTAssertTrue("\(error)".contains("checksum") && "\(error)".contains("at byte 0"), "\(error)")
        }
        // A member may not be given more than its size.
        let writer = PaxWriter { _ in }
        try writer.begin(TarHeader(path: "x", size: 2))
        XCTAssertThrowsError(try [1, 2, 3].withUnsafeBytes { try writer.write(UnsafeRawBufferPointer($0)) })
    }
}
