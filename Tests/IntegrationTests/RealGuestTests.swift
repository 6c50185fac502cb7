import Foundation
import TestSupport
import XCTest

/// Online backups through the dpm binary against the real Linux guest of TESTING.md
/// (TestGuest): Debian's kernel and qemu-guest-agent 7.2 under TCG, an ext4 disk, and a
/// writer in the guest that appends numbered records and syncs.
///
/// How the tests know the guest really froze, without touching the agent's channel (which
/// dpm holds during the backup, and which serves one client at a time): the guest's own test
/// channel (a second virtio-serial port) samples, every 10 ms between the pre-freeze hook's
/// `watch` and the post-thaw hook's `report`, qemu-ga's frozen flag (the file behind
/// guest-fsfreeze-status) and whether the guest kernel holds a write to /mnt at the
/// superblock's freeze barrier. The freeze is held for a second (DPM_PAUSE_AT) so the
/// sampler sees it. A third, disk-level witness: ext4 clears `needs_recovery` when it is
/// frozen (the journal is written out), and a mounted filesystem otherwise always has it.
final class RealGuestTests: XCTestCase, RunningVMHarness {
    var root = ""
    var qemu: TestQEMU!
    var vmID = ""
    var guest: TestGuest!

    override func setUpWithError() throws {
        for tool in ["qemu-system-x86_64", "e2fsck", "debugfs", "dumpe2fs"] { try TestSupport.require(tool) }
        root = try TestSupport.temporaryDirectory(self)
    }

    /// Where the `number`-th guest of a test lives.
    func guestDirectory(_ number: Int = 1) -> String { root + "/guest\(number)" }

    /// Boots a guest in `guestDirectory(number)` and registers it as VM `name` with its QMP
    /// socket, its agent and `extra`.
    @discardableResult
    func startGuest(_ options: TestGuest.Options = .init(), number: Int = 1, name: String = "vm", extra: [String] = []) throws -> TestGuest {
        let directory = guestDirectory(number)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let guest = try TestGuest(self, directory: directory, options: options)
        self.guest = guest
        qemu = guest.qemu
        let added = try dpm(["vm", "add", name, "--qmp", qemu.qmpSocket, "--guest-agent", guest.agentSocket, "--json"] + extra)
        vmID = (try added.json() as? [String: Any])?["id"] as? String ?? ""
        addTeardownBlock { [weak self] in self?.assertNothingLeft() }
        return guest
    }

    /// While the guest writes, an online backup with hooks is application-consistent, the
    /// guest was frozen (its agent's flag and its kernel both said so during the hooks'
    /// window), and the restored disk is a clean ext4 whose record file holds a complete
    /// prefix of the records, with every record written before the backup began. The same
    /// observation around an offline backup sees no freeze, and its image needs recovery.
    func testOnlineBackupOfTheRealGuestIsConsistentAndReallyFrozen() throws {
        let report = root + "/freeze-report.txt"
        let channel = TestGuest.channelCommand(directory: guestDirectory())
        let guest = try startGuest(.init(writerIntervalMs: 20), extra: [
            "--pre-freeze", "test \"$(\(channel) watch)\" = watching", "--post-thaw", "\(channel) report > \(report)"])
        try waitFor("the guest's first records", seconds: 60) { try guest.records() >= 20 }

        let before = try guest.records()
        let (_, point) = try backup("--full", environment: ["DPM_PAUSE_AT": "running.frozen:1"])
        let after = try guest.records()
        XCTAssertEqual(point["consistency"] as? String, "application", "\(point)")
        XCTAssertEqual(point["pause_ms"] as? Int, 0, "online: the VM ran on")
        let reason = point["reason"] as? String ?? ""
        XCTAssertTrue(reason.hasPrefix("online: the guest agent froze 1 filesystem(s)"), reason)
        XCTAssertTrue(reason.contains("guest-fsfreeze-status said 'frozen' before the point"), reason)
        let seen = try counts(String(contentsOfFile: report, encoding: .utf8))
        XCTAssertGreaterThan(seen["both"] ?? 0, 0, "the guest saw its agent frozen and its writes held: \(seen)")
        XCTAssertEqual(try guest.ask("state"), "agent=thawed kernel=thawed", "thawed afterwards")
        XCTAssertGreaterThan(after, before, "the writer went on after the thaw")

        let disk = try XCTUnwrap(try recover(try XCTUnwrap(point["id"] as? String), format: "raw").first)
        let check = try runProcess(["e2fsck", "-fn", disk])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertFalse(try features(disk).contains("needs_recovery"), "the freeze wrote the journal out")
        let (count, problem) = try records(in: disk)
        XCTAssertNil(problem)
        XCTAssertGreaterThanOrEqual(count, before, "every record written before the backup began is in the point")
        XCTAssertLessThanOrEqual(count, after)

        try dpm(["vm", "set", "vm", "--guest-agent", ""])
        XCTAssertEqual(try guest.ask("watch"), "watching")
        let (_, paused) = try backup()
        let unseen = try counts(guest.ask("report"))
        XCTAssertEqual(paused["consistency"] as? String, "crash", "\(paused)")
        XCTAssertGreaterThan(unseen["samples"] ?? 0, 0, "\(unseen)")
        XCTAssertEqual(unseen["agent-frozen"], 0, "\(unseen)")
        XCTAssertEqual(unseen["kernel-frozen"], 0, "\(unseen)")
        let crashed = try XCTUnwrap(try recover(try XCTUnwrap(paused["id"] as? String), format: "raw").first)
        XCTAssertTrue(try features(crashed).contains("needs_recovery"), "a crash-consistent image of a mounted ext4")
    }

    /// The handshake against the real agent: a client holding the channel makes the backup
    /// offline with that reason; replies an earlier client left unread and its half-sent
    /// command are skipped; a backup killed while the guest is frozen is thawed by the
    /// watchdog through the real agent, and the next backup is online again.
    func testRealAgentChannelStaleRepliesAndWatchdog() throws {
        let guest = try startGuest(.init(writerIntervalMs: 50))
        let holder = try TestLineSocket(path: guest.agentSocket)
        try holder.send(line: "{\"execute\":\"guest-ping\"}")
        XCTAssertEqual(String(decoding: try holder.readLine(), as: UTF8.self), "{\"return\": {}}", "the real agent answers the holder")
        let (_, held) = try backup("--full")
        XCTAssertEqual(held["consistency"] as? String, "crash")
        XCTAssertTrue((held["reason"] as? String ?? "").contains("another client holds the guest agent channel"), "\(held)")

        // The holder leaves replies unread (the agent delivers them to the next client) and
        // a command without its end (the agent's parser holds it).
        holder.shutdownReading()
        try holder.send(Array("{\"execute\":\"guest-info\"}\n{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":7}}\n{\"execute\":\"guest-pi".utf8))
        usleep(300_000)
        holder.close()
        let (_, online) = try backup()
        XCTAssertEqual(online["consistency"] as? String, "filesystem", "\(online)")

        let killed = try dpm(["backup", "vm"], environment: ["DPM_CRASH_AT": "running.frozen:1"], expect: nil)
        XCTAssertEqual(killed.status, SIGKILL, killed.stderr)
        try waitFor("the watchdog to thaw the guest", seconds: 40) { try guest.ask("state") == "agent=thawed kernel=thawed" }
        let (_, next) = try backup()
        XCTAssertEqual(next["consistency"] as? String, "filesystem", "\(next)")
        let disk = try XCTUnwrap(try recover(try XCTUnwrap(next["id"] as? String), format: "raw").first)
        XCTAssertNil(try records(in: disk).problem)
    }

    /// A guest whose qemu-ga does not run, and one whose qemu-ga has the freeze disabled
    /// (--block-rpcs): offline, each with its reason, without waiting out a timeout.
    func testGuestWithoutAgentOrWithFreezeDisabledIsBackedUpOffline() throws {
        try startGuest(.init(agent: false))
        let started = Date()
        let (_, closed) = try backup("--full")
        XCTAssertEqual(closed["consistency"] as? String, "crash")
        XCTAssertTrue((closed["reason"] as? String ?? "").contains("the guest has not opened its agent port"), "\(closed)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
        qemu.stop()

        try startGuest(.init(blockedCommands: ["guest-fsfreeze-freeze"]), number: 2, name: "blocked")
        let (_, blocked) = try backup("--full", vm: "blocked")
        XCTAssertEqual(blocked["consistency"] as? String, "crash")
        XCTAssertTrue((blocked["reason"] as? String ?? "").contains("has guest-fsfreeze-freeze disabled (qemu-ga --block-rpcs)"), "\(blocked)")
    }

    /// "key=N key=N …" as numbers.
    private func counts(_ line: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for pair in line.split(whereSeparator: \.isWhitespace) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Int(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }

    /// The "Filesystem features" line of an ext4 image.
    private func features(_ image: String) throws -> String {
        let result = try runProcess(["dumpe2fs", "-h", image])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout.split(separator: "\n").first { $0.hasPrefix("Filesystem features:") }.map(String.init) ?? ""
    }

    /// The guest's record file in an image, read with debugfs, checked record by record.
    private func records(in image: String) throws -> (count: Int, problem: String?) {
        let copy = image + ".records"
        let dump = try runProcess(["debugfs", "-R", "dump /records \(copy)", image])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: copy)))
        XCTAssertGreaterThan(bytes.count, 0, "debugfs found no /records: \(dump.stderr)")
        return TestGuest.checkRecords(bytes)
    }
}
