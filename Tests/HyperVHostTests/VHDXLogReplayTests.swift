import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// VHDX files whose log still holds changes: dpm must replay the log in memory (never writing
/// the file) and show the disk as it is after the replay — the same content qemu shows after
/// `qemu-img check -r all` replays the log into a copy.
final class VHDXLogReplayTests: XCTestCase {
    static let mebibyte = 1 << 20

    /// The disk as it reads before the log: block 0 0xA1, block 1 0xB2, the rest zeros.
    static func baseContent() -> [UInt8] {
        [UInt8](repeating: 0xA1, count: mebibyte) + [UInt8](repeating: 0xB2, count: mebibyte) + [UInt8](repeating: 0, count: 6 * mebibyte)
    }

    private func sha(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Checks dpm's view against `expected`, that the file is untouched, and that qemu agrees
    /// after replaying the log into a copy.
    private func verify(_ path: String, expected: [UInt8], entries: Int, directory: TemporaryDirectory,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try sha(path)
        let image = try XCTUnwrap(try DiskImageOpener.open(path: path) as? VHDXImage, file: file, line: line)
        XCTAssertEqual(image.replayedLogEntries, entries, "replayed entries", file: file, line: line)
        try ImageChecks.checkAgainstReference(image, reference: expected, file: file, line: line)
        XCTAssertEqual(try sha(path), before, "a read-only open must not modify the file", file: file, line: line)

        let copy = directory.path("qemu-replayed.vhdx")
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        _ = try FormatTools.run("qemu-img", ["check", "-r", "all", "-f", "vhdx", copy], allowFailure: true)
        let qemuView = try FormatTools.referenceContent(of: copy, format: "vhdx", in: directory)
        XCTAssertNil(ImageChecks.firstDifference(qemuView, expected), "qemu's replay disagrees", file: file, line: line)
    }

    func testSingleEntryLogIsReplayedInMemory() throws {
        let directory = try TemporaryDirectory("log")
        let base = try VHDXLogCrafting.makeBase(in: directory)
        // A writer put block 3's data at the end of the file, then logged the BAT update and a
        // trim of block 1 (ZERO), zeroed the first 4 KiB of block 0 and rewrote 4 KiB at 8 KiB.
        let appended = try VHDXLogCrafting.appendBlock(to: base.path, byte: 0x5A)
        var bat = base.bat
        bat.putLE64(2, at: 8)                      // block 1: PAYLOAD_BLOCK_ZERO
        bat.putLE64(appended.offset | 6, at: 24)   // block 3: FULLY_PRESENT at the new block
        let logGuid = MSGUID.random()
        let entry = VHDXLogCrafting.entry(
            sequence: 5, tail: 0, logGuid: logGuid, flushedFileOffset: appended.fileSize, lastFileOffset: appended.fileSize, [
                .data(fileOffset: base.batOffset, bytes: bat),
                .zero(fileOffset: base.block0, length: 4096),
                .data(fileOffset: base.block0 + 8192, bytes: [UInt8](repeating: 0x77, count: 4096)),
            ])
        try VHDXLogCrafting.install(into: base.path, entries: [(0, entry)], logGuid: logGuid)

        var expected = Self.baseContent()
        expected.replaceSubrange(0..<4096, with: [UInt8](repeating: 0, count: 4096))
        expected.replaceSubrange(8192..<12288, with: [UInt8](repeating: 0x77, count: 4096))
        expected.replaceSubrange(Self.mebibyte..<2 * Self.mebibyte, with: [UInt8](repeating: 0, count: Self.mebibyte))
        expected.replaceSubrange(3 * Self.mebibyte..<4 * Self.mebibyte, with: [UInt8](repeating: 0x5A, count: Self.mebibyte))
        try verify(base.path, expected: expected, entries: 1, directory: directory)
    }

    func testActiveSequenceOfTwoEntriesAndStaleEntryIgnored() throws {
        let directory = try TemporaryDirectory("log")
        let base = try VHDXLogCrafting.makeBase(in: directory)
        let appended = try VHDXLogCrafting.appendBlock(to: base.path, byte: 0x3C)
        let logGuid = MSGUID.random()
        var bat = base.bat
        bat.putLE64(appended.offset | 6, at: 40) // block 5
        let first = VHDXLogCrafting.entry(sequence: 10, tail: 0, logGuid: logGuid, flushedFileOffset: appended.fileSize,
                                          lastFileOffset: appended.fileSize, [.data(fileOffset: base.batOffset, bytes: bat)])
        let second = VHDXLogCrafting.entry(sequence: 11, tail: 0, logGuid: logGuid, flushedFileOffset: appended.fileSize,
                                           lastFileOffset: appended.fileSize, [.zero(fileOffset: base.block0, length: 8192)])
        var staleBat = base.bat
        staleBat.putLE64(0, at: 0) // would drop block 0 if it were (wrongly) replayed
        let stale = VHDXLogCrafting.entry(sequence: 3, tail: 40 * 4096, logGuid: logGuid, flushedFileOffset: 0, lastFileOffset: 0,
                                          [.data(fileOffset: base.batOffset, bytes: staleBat)])
        try VHDXLogCrafting.install(into: base.path, entries: [(0, first), (first.count / 4096, second), (40, stale)], logGuid: logGuid)

        var expected = Self.baseContent()
        expected.replaceSubrange(0..<8192, with: [UInt8](repeating: 0, count: 8192))
        expected.replaceSubrange(5 * Self.mebibyte..<6 * Self.mebibyte, with: [UInt8](repeating: 0x3C, count: Self.mebibyte))
        try verify(base.path, expected: expected, entries: 2, directory: directory)

        // With the head entry damaged, the active sequence is the first entry alone.
        var damaged = second
        damaged[100] ^= 0xFF
        try VHDXLogCrafting.patch(base.path, at: 1 << 20 + UInt64(first.count), damaged)
        expected.replaceSubrange(0..<8192, with: [UInt8](repeating: 0xA1, count: 8192))
        let image = try XCTUnwrap(try DiskImageOpener.open(path: base.path) as? VHDXImage)
        XCTAssertEqual(image.replayedLogEntries, 1)
        try ImageChecks.checkAgainstReference(image, reference: expected)
    }

    func testLogWithoutValidEntriesChangesNothing() throws {
        let directory = try TemporaryDirectory("log")
        let base = try VHDXLogCrafting.makeBase(in: directory)
        try VHDXLogCrafting.install(into: base.path, entries: [], logGuid: .random())
        let image = try XCTUnwrap(try DiskImageOpener.open(path: base.path) as? VHDXImage)
        XCTAssertEqual(image.replayedLogEntries, 0)
        try ImageChecks.checkAgainstReference(image, reference: Self.baseContent())
    }

    func testRefusesLogOfTruncatedFile() throws {
        let directory = try TemporaryDirectory("log")
        let base = try VHDXLogCrafting.makeBase(in: directory)
        let logGuid = MSGUID.random()
        let entry = VHDXLogCrafting.entry(sequence: 1, tail: 0, logGuid: logGuid, flushedFileOffset: 1 << 40, lastFileOffset: 1 << 40,
                                          [.zero(fileOffset: base.block0, length: 4096)])
        try VHDXLogCrafting.install(into: base.path, entries: [(0, entry)], logGuid: logGuid)
        ImageChecks.expectError(.corrupt, ["disk \(base.path)", "truncated", "log cannot be replayed"]) {
            try DiskImageOpener.open(path: base.path)
        }
    }

    func testRefusesLogLargerThanDpmReplays() throws {
        let directory = try TemporaryDirectory("log")
        let base = try VHDXLogCrafting.makeBase(in: directory)
        try VHDXLogCrafting.install(into: base.path, entries: [], logGuid: .random(), logLength: 128 << 20)
        try FileHandle(forWritingTo: URL(fileURLWithPath: base.path)).truncate(atOffset: 200 << 20)
        ImageChecks.expectError(.unsupported, ["disk \(base.path)", "128 MiB", "replays logs up to 64 MiB"]) {
            try DiskImageOpener.open(path: base.path)
        }
    }
}
