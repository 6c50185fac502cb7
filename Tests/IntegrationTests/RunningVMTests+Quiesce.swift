import Foundation
import TestSupport
import XCTest

/// Online backups through the guest agent, their fallbacks, and backups killed while the
/// guest is frozen or the VM paused.
extension RunningVMTests {
    /// The freeze comes before the point and the thaw after it: the peer writes a pattern
    /// when it is frozen (in the point) and another when it is thawed (not in the point).
    /// With hooks, the point is application-consistent; the VM is never paused.
    func testOnlineBackupFreezesAroundThePoint() throws {
        let peer = try GuestAgentPeer(path: root + "/qga.sock")
        defer { peer.stop() }
        let hooks = root + "/hooks.log"
        let qemu = try startVM(extra: ["--guest-agent", peer.path, "--pre-freeze", "echo pre $DPM_VM_NAME >> \(hooks)",
                                       "--post-thaw", "echo post >> \(hooks)"])
        peer.onFreeze = { try? qemu.write(disk: 0, pattern: 0xAA, offset: 12 << 20, length: 64 << 10) }
        peer.onThaw = { try? qemu.write(disk: 1, pattern: 0xBB, offset: 13 << 20, length: 64 << 10) }
        let (_, point) = try backup("--full")
        XCTAssertEqual(point["consistency"] as? String, "application", "\(point)")
        XCTAssertEqual(point["pause_ms"] as? Int, 0, "online: the VM runs on")
        XCTAssertTrue((point["reason"] as? String ?? "").hasPrefix("online: the guest agent froze 2 filesystem(s)"), "\(point)")
        XCTAssertEqual(peer.commands, ["guest-sync-delimited", "guest-info", "guest-fsfreeze-status", "guest-get-fsinfo",
                                       "guest-fsfreeze-freeze", "guest-fsfreeze-status", "guest-fsfreeze-thaw"])
        XCTAssertFalse(peer.frozen)
        XCTAssertEqual(try String(contentsOfFile: hooks, encoding: .utf8), "pre vm\npost\n")
        let disks = try recover(try XCTUnwrap(point["id"] as? String)).map(rawContent)
        XCTAssertEqual(Set(disks[0][(12 << 20)..<(12 << 20) + (64 << 10)]), [0xAA], "written while frozen, before the point")
        XCTAssertEqual(Set(disks[1][(13 << 20)..<(13 << 20) + (64 << 10)]), [0], "written at the thaw, after the point")
        let shown = try XCTUnwrap(try dpm(["rp", "show", "vm", "--json"]).json() as? [String: Any])
        XCTAssertEqual(shown["consistency"] as? String, "application")
        XCTAssertEqual(shown["reason"] as? String, point["reason"] as? String)
    }

    /// A guest agent that hangs on the freeze: the backup thaws the guest, falls back to a
    /// paused (crash-consistent) point and records why.
    func testHungFreezeFallsBackToOffline() throws {
        try dpm(["config", "set", "hyperv-host.freeze_timeout_ms", "500"])
        let peer = try GuestAgentPeer(path: root + "/qga.sock", behaviour: .hangOnFreeze)
        defer { peer.stop() }
        try startVM(extra: ["--guest-agent", peer.path])
        let started = Date()
        let (_, point) = try backup("--full")
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        XCTAssertEqual(point["consistency"] as? String, "crash")
        let reason = point["reason"] as? String ?? ""
        XCTAssertTrue(reason.contains("could not freeze") && reason.contains("paused for"), reason)
        XCTAssertLessThan(point["pause_ms"] as? Int ?? .max, 100)
        XCTAssertFalse(peer.frozen, "thawed")
        let commands = peer.commands
        XCTAssertEqual(commands.last, "guest-fsfreeze-thaw", "\(commands)")
        XCTAssertLessThan(commands.firstIndex(of: "guest-fsfreeze-freeze") ?? .max, commands.count - 1, "\(commands)")
    }

    /// A backup killed (SIGKILL) while the VM is paused, after the point with its exports
    /// open, or while the guest is frozen: the watchdog resumes the VM or thaws the guest;
    /// the next backup clears the leftovers, keeps change tracking (the interrupted
    /// generation is merged back) and restores correctly.
    func testKilledBackupIsResumedThawedAndCleanedUp() throws {
        let peer = try GuestAgentPeer(path: root + "/qga.sock")
        defer { peer.stop() }
        let qemu = try startVM(extra: ["--guest-agent", peer.path])
        try backup("--full")

        peer.behaviour = .failFreeze  // offline: the VM is paused
        let paused = try dpm(["backup", "vm"], environment: ["DPM_CRASH_AT": "running.paused:1"], expect: nil)
        XCTAssertEqual(paused.status, SIGKILL, paused.stderr)
        try waitFor("the watchdog to resume the VM") { try qemu.monitor.status() == "running" }
        XCTAssertFalse(try qemu.objects(prefix: prefix).nodes.isEmpty, "the killed backup left its overlays")

        peer.behaviour = .normal
        try qemu.write(disk: 0, pattern: 0x61, offset: 20 << 20, length: 64 << 10)
        let exported = try dpm(["backup", "vm"], environment: ["DPM_CRASH_AT": "running.exported:1"], expect: nil)
        XCTAssertEqual(exported.status, SIGKILL, exported.stderr)
        XCTAssertFalse(peer.frozen)
        XCTAssertEqual(try qemu.objects(prefix: prefix).bitmaps["disk0"]?.count, 2, "the interrupted generation is left")
        try qemu.write(disk: 1, pattern: 0x62, offset: 21 << 20, length: 64 << 10)
        let (report, point) = try backup()
        XCTAssertEqual(point["change_source"] as? String, "tracked", "\(report)")
        XCTAssertTrue((report["notes"] as? [String] ?? []).contains { $0.contains("merged 1 bitmap(s) left by an interrupted backup") }, "\(report)")
        try assertRecoveredEqualsLive(try XCTUnwrap(point["id"] as? String))

        let frozen = try dpm(["backup", "vm"], environment: ["DPM_CRASH_AT": "running.frozen:1"], expect: nil)
        XCTAssertEqual(frozen.status, SIGKILL, frozen.stderr)
        try waitFor("the watchdog to thaw the guest") { !peer.frozen }
        let log = peer.log
        let freeze = try XCTUnwrap(log.last { $0.command == "guest-fsfreeze-freeze" })
        let thaw = try XCTUnwrap(log.last { $0.command == "guest-fsfreeze-thaw" })
        XCTAssertNotEqual(freeze.clientPID, thaw.clientPID, "the thaw came from the watchdog, not the killed backup")
        XCTAssertEqual(try qemu.monitor.status(), "running", "online: never paused")
        try qemu.write(disk: 0, pattern: 0x63, offset: 22 << 20, length: 64 << 10)
        let (_, online) = try backup()
        XCTAssertEqual(online["consistency"] as? String, "filesystem")
        XCTAssertEqual(online["change_source"] as? String, "tracked")
        try assertRecoveredEqualsLive(try XCTUnwrap(online["id"] as? String))
    }
}
