import Foundation
import PluginAPI
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// DPM's tape policy: co-location, appending, reuse, imported tapes, waiting for a tape,
/// and never mixing encrypted with unencrypted data.
final class TapePolicyTests: XCTestCase {
    let day = 86_400.0

    func tape(_ barcode: String, state: TapeState = .appendable, furthest: Double, firstWrittenDaysAgo: Double, retention: Int,
              fingerprint: String? = nil) -> TapeRecord {
        var tape = TapeRecord(barcode: barcode, library: "lib1", state: state)
        tape.colocated = true
        tape.furthestExpiry = Date().addingTimeInterval(furthest * day)
        tape.firstWritten = Date().addingTimeInterval(-firstWrittenDaysAgo * day)
        tape.firstRetentionDays = retention
        tape.encryption = fingerprint.map { .object(["key_fingerprint": .string($0)]) }
        return tape
    }

    func request(expiresInDays days: Double, colocate: Bool = true, fingerprint: String? = nil) -> TapeSelection.Request {
        TapeSelection.Request(pool: "p", expires: Date().addingTimeInterval(days * day), retentionDays: Int(days), colocate: colocate,
                              frequency: "weekly", fingerprint: fingerprint, encrypted: fingerprint != nil, standalone: false)
    }

    func testColocationWithinSeventeenPercentAndFifteenPercentWindow() {
        let now = Date()
        let base = tape("T1", furthest: 100, firstWrittenDaysAgo: 5, retention: 100)
        XCTAssertTrue(TapeSelection.colocationAllows(base, expires: now.addingTimeInterval(116 * day), now: now), "+16% joins")
        XCTAssertTrue(TapeSelection.colocationAllows(base, expires: now.addingTimeInterval(84 * day), now: now), "-16% joins")
        XCTAssertFalse(TapeSelection.colocationAllows(base, expires: now.addingTimeInterval(118 * day), now: now), "+18% does not")
        XCTAssertFalse(TapeSelection.colocationAllows(base, expires: now.addingTimeInterval(82 * day), now: now), "-18% does not")
        let late = tape("T2", furthest: 100, firstWrittenDaysAgo: 16, retention: 100)
        XCTAssertFalse(TapeSelection.colocationAllows(late, expires: now.addingTimeInterval(100 * day), now: now),
                       "16 days into a 100-day retention is past the first 15%")
        var free = TapeRecord(barcode: "T3", library: "lib1", state: .free)
        free.pool = "p"
        XCTAssertEqual(TapeSelection.choose(request(expiresInDays: 100), candidates: [late, free], now: now), .fresh("T3"))
        XCTAssertEqual(TapeSelection.choose(request(expiresInDays: 100), candidates: [base, free], now: now), .append("T1"))
        XCTAssertEqual(TapeSelection.choose(request(expiresInDays: 100, colocate: false), candidates: [base, free], now: now), .fresh("T3"),
                       "without co-location a weekly copy takes a tape of its own")
    }

    func testEncryptedAndUnencryptedNeverShareATape() {
        let now = Date()
        let plain = tape("T1", furthest: 100, firstWrittenDaysAgo: 1, retention: 100)
        let keyA = tape("T2", furthest: 100, firstWrittenDaysAgo: 1, retention: 100, fingerprint: "aa")
        XCTAssertEqual(TapeSelection.choose(request(expiresInDays: 100, fingerprint: "aa"), candidates: [plain, keyA], now: now), .append("T2"))
        XCTAssertEqual(TapeSelection.choose(request(expiresInDays: 100), candidates: [plain, keyA], now: now), .append("T1"))
        XCTAssertNil(TapeSelection.choose(request(expiresInDays: 100, fingerprint: "bb"), candidates: [plain, keyA], now: now))
    }

    func testImportedUnrecognisedSuspectAndCleaningAreNeverChosen() {
        let states: [TapeState] = [.imported, .unrecognised, .suspect, .cleaning, .full, .offsiteReady]
        let candidates = states.enumerated().map { TapeRecord(barcode: "T\($0.offset)", library: "lib1", state: $0.element) }
        XCTAssertNil(TapeSelection.choose(request(expiresInDays: 30, colocate: false), candidates: candidates, now: Date()))
    }

    func testStandaloneDriveAppendsDailyCopiesUntilFullThenTakesTheNextFreeTape() throws {
        let fixture = try TapeFixture(self, drives: 1, capacity: "6M", earlyWarning: "2M")
        let piece = [UInt8](repeating: 0, count: 10_240)  // an empty pax archive's worth
        var descriptions: [ArchiveDescription] = []
        for index in 0..<40 {
            var bytes = try HostArchive.make(root: fixture.root, rp: "d\(index)", chunks: [TestData.random(400_000, seed: UInt64(index))])
            if bytes.isEmpty { bytes = piece }
            descriptions.append(try fixture.store(TapeFixture.request("daily\(index)", pool: "g1", frequency: "daily"), bytes))
            if descriptions.last?.location.contains("A00002L8") == true { break }
        }
        let onFirst = descriptions.filter { $0.location.hasPrefix("A00001L8") }
        XCTAssertGreaterThan(onFirst.count, 3, "daily copies appended to the same tape")
        XCTAssertEqual(onFirst.map(\.location).map { $0.split(separator: " ")[2] }, (0..<onFirst.count).map { "\(1 + 2 * $0)" }[...].map { Substring($0) },
                       "files 1, 3, 5…: each copy followed by its catalog")
        XCTAssertEqual(try fixture.tapeState("A00001L8"), "full")
        XCTAssertTrue(descriptions.last?.location.contains("A00002L8") == true, "then the next free tape")
        for description in descriptions.suffix(3) {
            XCTAssertEqual(UInt64(try fixture.read(description.name).count), description.bytes)
        }
    }

    func testWeeklyCopiesWithoutColocationTakeATapeEachAndNoTapeFailsWithTheFix() throws {
        let fixture = try TapeFixture(self, barcodes: ["A00001L8", "A00002L8"], wait: 1)
        let bytes = try HostArchive.make(root: fixture.root, rp: "w", chunks: [TestData.random(10_000, seed: 1)])
        XCTAssertEqual(try fixture.store(TapeFixture.request("w1", pool: "gold"), bytes).location, "A00001L8 file 1")
        XCTAssertEqual(try fixture.store(TapeFixture.request("w2", pool: "gold"), bytes).location, "A00002L8 file 1")
        XCTAssertEqual(try fixture.tapeState("A00001L8"), "offsite-ready")
        let started = Date()
        XCTAssertThrowsError(try fixture.store(TapeFixture.request("w3", pool: "gold"), bytes)) { error in
            let message = (error as? PluginError)?.message ?? "\(error)"
            XCTAssertEqual((error as? PluginError)?.code, .noSpace)
            XCTAssertTrue(message.contains("pool 'gold'"), message)
            XCTAssertTrue(message.contains("dpm tape mark-free BARCODE"), message)
            XCTAssertTrue(message.contains("mail slot"), message)
        }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.9, "it waited for a tape first")
        // An operator inserts a tape into the mail slot: the next job imports and uses it.
        try fixture.command("vtl.insert", ["library": "lib1", "barcode": "A00003L8", "mail": 1])
        XCTAssertEqual(try fixture.store(TapeFixture.request("w3", pool: "gold"), bytes).location, "A00003L8 file 1")
        let location = try fixture.tapes()["A00003L8"]?["location"]?.stringValue ?? ""
        XCTAssertTrue(location.hasPrefix("slot:") || location.hasPrefix("drive:"), "moved out of the mail slot: \(location)")
        XCTAssertEqual(try fixture.read("w3"), bytes)
    }

    func testExpiredTapeIsReusedWithoutErasing() throws {
        let fixture = try TapeFixture(self, barcodes: ["A00001L8"])
        let bytes = try HostArchive.make(root: fixture.root, rp: "e", chunks: [TestData.random(10_000, seed: 2)])
        try fixture.store(TapeFixture.request("old", expires: Date().addingTimeInterval(60)), bytes)
        XCTAssertThrowsError(try fixture.store(TapeFixture.request("blocked"), bytes), "the only tape is offsite-ready")
        let reply = try TapeLibraryProvider.expire(now: Date().addingTimeInterval(120), context: fixture.context)
        XCTAssertEqual(reply.expired, ["old"])
        XCTAssertEqual(try fixture.tapeState("A00001L8"), "expired")
        XCTAssertEqual(try fixture.store(TapeFixture.request("new"), bytes).location, "A00001L8 file 1", "reused from the start")
        XCTAssertEqual(try fixture.read("new"), bytes)
        XCTAssertEqual(try TapeLibraryProvider.list(ArchiveFilter(), context: fixture.context).archives.map(\.name), ["new"])
    }

    func testEncryptedArchiveNeverJoinsAnUnencryptedTape() throws {
        let fixture = try TapeFixture(self, barcodes: ["A00001L8", "A00002L8"])
        let bytes = try HostArchive.make(root: fixture.root, rp: "c", chunks: [TestData.random(10_000, seed: 3)])
        try fixture.store(TapeFixture.request("plain", pool: "p", days: 3650, colocate: true), bytes)
        let key: JSONValue = .object(["key_fingerprint": .string("f00d"), "wrapped_key": .object([:])])
        let sealed = try fixture.store(TapeFixture.request("sealed", pool: "p", days: 3650, colocate: true, encryption: key), bytes)
        XCTAssertEqual(sealed.location, "A00002L8 file 1", "a separate tape for encrypted data")
        XCTAssertEqual(sealed.encryption, key)
        let again = try fixture.store(TapeFixture.request("plain2", pool: "p", days: 3650, colocate: true), bytes)
        XCTAssertEqual(again.location, "A00001L8 file 3", "co-located with the unencrypted archive")
        let label = try TestSupport.run(["tar", "-b", "512", "-xOf", try fixture.export("A00002L8", file: 0), "dpm-tape/label.json"])
        XCTAssertTrue(label.output.contains("f00d"), "the label carries the key fingerprint: \(label.output)")
    }

    func testImportedTapeIsNeverOverwrittenUntilMarkedFree() throws {
        let first = try TapeFixture(self, barcodes: ["A00001L8"])
        let bytes = try HostArchive.make(root: first.root, rp: "i", chunks: [TestData.random(20_000, seed: 4)])
        try first.store(TapeFixture.request("theirs"), bytes)
        // A second server (a fresh state directory) attaches the same virtual library.
        let second = try TapeContext(stateDirectory: first.root + "/state2", waitSeconds: 1)
        let attach = try TapeCommands.run(CommandRequest(verb: "library.add", args: TapeFixture.json(["name": "lib1", "kind": "vtl", "dir": first.vtl])), context: second)
        XCTAssertEqual(attach["created"], .bool(false))
        let found = try TapeRecatalog.run(barcode: "A00001L8", context: second)
        XCTAssertEqual(found["state"]?.stringValue, "imported")
        XCTAssertEqual(found["archives"]?.arrayValue?.first?["name"]?.stringValue, "theirs")
        XCTAssertThrowsError(try storeWith(second, TapeFixture.request("mine"), bytes), "an imported tape is not written")
        XCTAssertEqual(try TapeFixture.read("theirs", context: second), bytes, "but it restores")
        _ = try TapeCommands.run(CommandRequest(verb: "tape.mark-free", args: TapeFixture.json(["barcode": "A00001L8"])), context: second)
        XCTAssertEqual(try storeWith(second, TapeFixture.request("mine"), bytes).location, "A00001L8 file 1")
    }

    func storeWith(_ context: TapeContext, _ request: ArchiveRequest, _ bytes: [UInt8]) throws -> ArchiveDescription {
        let writer = try TapeArchiveWriter(context: context, request: request)
        try bytes.withUnsafeBytes { try writer.write($0) }
        return try writer.finish(commit: true, call: TapeFixture.call)
    }
}
