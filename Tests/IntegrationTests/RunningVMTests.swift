import Foundation
import TestSupport
import XCTest

/// Backups of running VMs end to end through the dpm binary, against a real
/// qemu-system-x86_64 (TCG, no guest OS; the guest's writes are qemu-io commands through a
/// QMP monitor of the test's own) and a guest-agent peer written for the tests.
final class RunningVMTests: XCTestCase, RunningVMHarness {
    var root = ""
    var qemu: TestQEMU!
    var vmID = ""

    override func setUpWithError() throws {
        for tool in ["qemu-system-x86_64", "qemu-img", "qemu-io"] { try TestSupport.require(tool) }
        root = try TestSupport.temporaryDirectory(self)
    }

    /// While a backup runs, the guest keeps writing numbered patterns to both disks, in
    /// turn. The recovery point holds a prefix of the writes and none of the later ones, on
    /// both disks together, and no write made after dpm exported its view (the point comes
    /// before the export); the VM was paused briefly (no guest agent: offline).
    func testPointInTimeWhileTheGuestWrites() throws {
        let qemu = try startVM(prefill: 24 << 20)
        try backup("--full")
        let region: UInt64 = 8 << 20, slot: UInt64 = 64 << 10, total = 700
        func pattern(_ write: Int) -> UInt8 { UInt8(write % 250 + 2) }
        let done = Counter(), stop = Counter()
        let writer = Thread {
            for write in 0..<total where stop.value == 0 {
                do {
                    try qemu.write(disk: write % 2, pattern: pattern(write), offset: region + UInt64(write / 2) * slot, length: slot)
                    done.increment()
                } catch { break }
                usleep(2_000)
            }
        }
        writer.start()
        try waitFor("the first writes") { done.value >= 4 }
        // The backup keeps its exports open for a second (DPM_PAUSE_AT) before reading
        // them, while the writes go on; the test notes how many writes had completed when
        // the exports appeared.
        let outcome = Box<(report: [String: Any], point: [String: Any])>()
        let runner = Thread { outcome.value = try? self.backup(environment: ["DPM_PAUSE_AT": "running.exported:1.0"]) }
        runner.start()
        var whenExported = Int.max
        try waitFor("dpm's exports") {
            if try !qemu.objects(prefix: prefix).exports.isEmpty { whenExported = done.value; return true }
            return runner.isFinished
        }
        try waitFor("the backup") { runner.isFinished }
        stop.increment()
        try waitFor("the writer to stop") { writer.isFinished }
        let written = done.value
        let point = try XCTUnwrap(outcome.value?.point)
        XCTAssertEqual(point["consistency"] as? String, "crash")
        XCTAssertTrue((point["reason"] as? String ?? "").contains("paused"), "\(point)")
        let pause = try XCTUnwrap(point["pause_ms"] as? Int)
        XCTAssertLessThan(pause, 100, "the offline pause")
        XCTAssertEqual(point["change_source"] as? String, "tracked")

        let disks = try recover(try XCTUnwrap(point["id"] as? String)).map(rawContent)
        var present: [Bool] = []
        for write in 0..<written {
            let start = Int(region + UInt64(write / 2) * slot)
            let bytes = Set(disks[write % 2][start..<start + Int(slot)])
            XCTAssertTrue(bytes == [pattern(write)] || bytes == [1], "write \(write) is torn: \(bytes)")
            present.append(bytes == [pattern(write)])
        }
        let kept = present.firstIndex(of: false) ?? written
        XCTAssertEqual(present, (0..<written).map { $0 < kept }, "the point holds a prefix of the writes, across both disks")
        XCTAssertGreaterThan(kept, 0, "writes before the point are in it")
        XCTAssertLessThanOrEqual(kept, whenExported, "no write completed after the export is in the point")
        XCTAssertLessThan(whenExported + 20, written, "the guest kept writing while the backup ran")

        // The writes after the point are in the next incremental's bitmap.
        let (_, next) = try backup()
        XCTAssertEqual(next["change_source"] as? String, "tracked")
        try assertRecoveredEqualsLive(try XCTUnwrap(next["id"] as? String))
    }

    /// An incremental reads only the dirty ranges rounded up to 4 MiB chunks, and every
    /// point restores byte for byte.
    func testIncrementalsReadOnlyDirtyChunks() throws {
        let qemu = try startVM(prefill: 24 << 20)
        let (_, full) = try backup("--full")
        XCTAssertGreaterThanOrEqual(full["bytes_read"] as? Int ?? 0, 48 << 20, "the full copy reads everything allocated")
        let writes: [(disk: Int, offset: UInt64, length: UInt64)] = [
            (0, 1 << 20, 64 << 10), (0, 30 << 20, 64 << 10), (0, (50 << 20) + 4096, 4096),
            (1, 9 << 20, 4096), (1, (9 << 20) + 8192, 4096), (1, 60 << 20, 64 << 10),
        ]
        for (number, write) in writes.enumerated() {
            try qemu.write(disk: write.disk, pattern: UInt8(0x40 + number), offset: write.offset, length: write.length)
        }
        // Dirty 4 MiB chunks: disk0 three, disk1 two.
        let chunks = 5
        for mode in ["--incremental", "--express-full"] {
            let (report, point) = try backup(mode)
            XCTAssertEqual(point["change_source"] as? String, "tracked", mode)
            let read = try XCTUnwrap(point["bytes_read"] as? Int)
            XCTAssertLessThanOrEqual(read, chunks * (4 << 20), "\(mode) reads at most the dirty chunks")
            XCTAssertLessThanOrEqual(report["chunks_read"] as? Int ?? .max, chunks)
            XCTAssertFalse((report["notes"] as? [String] ?? []).contains { $0.contains("no trustworthy") }, "\(report)")
            try assertRecoveredEqualsLive(try XCTUnwrap(point["id"] as? String))
            if mode == "--incremental" {
                XCTAssertGreaterThanOrEqual(read, writes.reduce(0) { $0 + Int($1.length) })
                try qemu.write(disk: 1, pattern: 0x7F, offset: 9 << 20, length: 4096)
            }
        }
        let (_, quiet) = try backup()
        XCTAssertEqual(quiet["bytes_read"] as? Int, 0, "nothing written, nothing read")
    }

    /// A QEMU restart loses the VHDX disk's in-memory bitmap: the next backup hashes that
    /// disk and says so, keeps tracking the qcow2 disk (persistent bitmap), and the chain
    /// restores correctly. A crashed QEMU leaves the qcow2 bitmap inconsistent: hashed too.
    func testQEMURestartFallsBackToHashing() throws {
        let qemu = try startVM(wiring: .devices)
        try backup("--full")
        try qemu.restart()
        try qemu.resume()
        try qemu.write(disk: 0, pattern: 0x51, offset: 2 << 20, length: 64 << 10)
        try qemu.write(disk: 1, pattern: 0x52, offset: 3 << 20, length: 64 << 10)
        let (report, point) = try backup()
        let notes = report["notes"] as? [String] ?? []
        XCTAssertEqual(point["change_source"] as? String, "hashed")
        XCTAssertTrue(notes.contains { $0.contains("stream disk0: no trustworthy change tracking") }, "\(notes)")
        XCTAssertTrue(notes.contains { $0.contains("QEMU restarted") && $0.contains("sys.vhdx") }, "\(notes)")
        XCTAssertFalse(notes.contains { $0.contains("stream disk1") }, "the qcow2 bitmap survived: \(notes)")
        try assertRecoveredEqualsLive(try XCTUnwrap(point["id"] as? String))

        try qemu.write(disk: 0, pattern: 0x53, offset: 40 << 20, length: 4096)
        let (_, tracked) = try backup()
        XCTAssertEqual(tracked["change_source"] as? String, "tracked", "tracking resumes after the fallback")
        try assertRecoveredEqualsLive(try XCTUnwrap(tracked["id"] as? String))

        qemu.crash()
        try qemu.start()
        try qemu.resume()
        try qemu.write(disk: 1, pattern: 0x54, offset: 5 << 20, length: 4096)
        let (afterCrash, hashed) = try backup()
        XCTAssertEqual(hashed["change_source"] as? String, "hashed")
        XCTAssertTrue((afterCrash["notes"] as? [String] ?? []).contains { $0.contains("stream disk1: no trustworthy") }, "\(afterCrash)")
        try assertRecoveredEqualsLive(try XCTUnwrap(hashed["id"] as? String))
        let points = try XCTUnwrap((try dpm(["rp", "list", "vm", "--json"]).json() as? [String: Any])?["recovery_points"] as? [[String: Any]])
        for point in points { try assertRecoveredEqualsLiveOrOlder(point) }
    }

    /// Every point of the chain still recovers (the latest equals the live disks; the older
    /// ones are checked by their own tests): here, that each recovers without error.
    func assertRecoveredEqualsLiveOrOlder(_ point: [String: Any]) throws {
        let paths = try recover(try XCTUnwrap(point["id"] as? String))
        for path in paths { XCTAssertEqual(try runProcess(["qemu-img", "check", path]).status, 0, path) }
    }
}

/// A value handed from a thread to the test.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

/// A counter shared between a test and its writer thread.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func increment() { lock.lock(); count += 1; lock.unlock() }
}
