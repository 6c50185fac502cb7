import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

/// The guest-agent client, the thaw/resume watchdog and the online/offline decision, against
/// a guest-agent peer written for the tests and a real QEMU (QMP). Never against a qemu-ga
/// of this machine: a freeze would freeze the machine itself.
final class GuestAgentQMPTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = try TestSupport.temporaryDirectory(self)
    }

    func testClientSynchronisesPastStaleOutput() throws {
        // A channel that still holds a previous client's replies: everything before the
        // 0xFF delimiter and the matching id is discarded.
        let path = root + "/stale.sock"
        let listener = try FakeListener(path: path) { fd in
            var request: [UInt8] = []
            var byte: UInt8 = 0
            while request.last != 0x0A && recv(fd, &byte, 1, 0) == 1 { request.append(byte) }
            let json = try? JSONSerialization.jsonObject(with: Data(request.filter { $0 != 0xFF })) as? [String: Any]
            let id = (json?["arguments"] as? [String: Any])?["id"] as? Int ?? 0
            let reply = Array("{\"return\": 3}\n{\"error\": {\"desc\": \"old\"}}\n".utf8) + [0xFF] + Array("{\"return\": \(id)}\n".utf8)
            _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // Then an absurd answer to the next command: it must not trap a conversion.
            request.removeAll()
            while request.last != 0x0A && recv(fd, &byte, 1, 0) == 1 { request.append(byte) }
            let absurd = Array("{\"return\": 1e300}\n".utf8)
            _ = absurd.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        defer { listener.stop() }
        let agent = try GuestAgentClient(path: path, timeout: 2)
        XCTAssertEqual(try agent.freeze(timeout: 2), 1_000_000_000)
        agent.close()
    }

    func testCommandsAndTimeouts() throws {
        let peer = try GuestAgentPeer(path: root + "/ga.sock")
        defer { peer.stop() }
        let agent = try GuestAgentClient(path: peer.path)
        try agent.ping()
        XCTAssertEqual(try agent.freezeStatus(), "thawed")
        XCTAssertEqual(try agent.freeze(timeout: 2), 2)
        XCTAssertTrue(peer.frozen)
        XCTAssertEqual(try agent.freezeStatus(), "frozen")
        XCTAssertEqual(try agent.thaw(timeout: 2), 2)
        XCTAssertEqual(try agent.filesystems()?.map(\.type), ["ext4", "vfat"])
        XCTAssertThrowsError(try agent.execute("guest-exec", timeout: 2)) { XCTAssertTrue($0 is GuestAgentClient.CommandError) }
        XCTAssertEqual(peer.commands, ["guest-sync-delimited", "guest-ping", "guest-fsfreeze-status", "guest-fsfreeze-freeze",
                                       "guest-fsfreeze-status", "guest-fsfreeze-thaw", "guest-get-fsinfo", "guest-exec"])
        agent.close()

        // A client that went away without reading its replies (the agent's write waits for
        // the next client): they reach the next client first, and are skipped.
        let earlier = try TestLineSocket(path: peer.path)
        earlier.shutdownReading()
        try earlier.send(line: "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":5}}\n{\"execute\":\"guest-info\"}")
        try waitFor("the earlier client's commands") { peer.commands.suffix(2) == ["guest-sync-delimited", "guest-info"] }
        earlier.close()
        let next = try GuestAgentClient(path: peer.path)
        XCTAssertEqual(try next.execute("guest-ping", timeout: 2), .object([:]), "its own reply, not a stale one")
        XCTAssertEqual(try next.freezeStatus(), "thawed")
        next.close()

        let hung = try GuestAgentPeer(path: root + "/hung.sock", behaviour: .hangOnFreeze, filesystems: nil)
        defer { hung.stop() }
        let stuck = try GuestAgentClient(path: hung.path)
        XCTAssertNil(try stuck.filesystems(), "guest-get-fsinfo not offered")
        let started = Date()
        XCTAssertThrowsError(try stuck.freeze(timeout: 0.3)) { XCTAssertEqual(($0 as? PluginError)?.code, .transient, "\($0)") }
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        stuck.close()
    }

    func testWatchdogDisarmsFiresOnDeadlineAndResumesQEMU() throws {
        let peer = try GuestAgentPeer(path: root + "/ga.sock")
        defer { peer.stop() }
        let disarmed = try ResumeWatchdog(undo: .thaw(agentSocket: peer.path), deadline: 0.5)
        disarmed.disarm()
        let expired = try ResumeWatchdog(undo: .thaw(agentSocket: peer.path), deadline: 0.3)
        try waitFor("the watchdog's thaw") { peer.commands.contains("guest-fsfreeze-thaw") }
        XCTAssertTrue(expired.mayHaveFired)
        expired.disarm()
        Thread.sleep(forTimeInterval: 0.4)
        XCTAssertEqual(peer.commands, ["guest-sync-delimited", "guest-fsfreeze-thaw"], "the disarmed watchdog sent nothing; the other synchronised first")
        XCTAssertNotEqual(peer.log.first?.clientPID, getpid(), "sent by the watchdog process")

        try TestSupport.require("qemu-system-x86_64")
        let disk = root + "/d.qcow2"
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"]).status, 0)
        let qemu = try TestQEMU(self, directory: root, disks: [.init(disk, format: "qcow2")])
        try qemu.resume()
        try qemu.monitor.execute("stop")
        XCTAssertEqual(try qemu.monitor.status(), "paused")
        let resume = try ResumeWatchdog(undo: .resume(qmpSocket: qemu.qmpSocket), deadline: 30)
        resume.fire(wait: 5)
        XCTAssertEqual(try qemu.monitor.status(), "running", "released: the watchdog sent cont")
    }

    /// Online with hooks is application-consistent; without, filesystem-consistent; a hook
    /// failure, a refused or hung freeze, an unfreezable filesystem or no agent fall back as
    /// behaviour 2 says, and the guest always ends thawed, the VM running.
    func testQuiescerChoosesOnlineOrOfflineAndRecordsWhy() throws {
        try TestSupport.require("qemu-system-x86_64")
        let disk = root + "/d.qcow2"
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"]).status, 0)
        let qemu = try TestQEMU(self, directory: root, disks: [.init(disk, format: "qcow2")])
        let client = try QMPClient(path: qemu.qmpSocket)
        defer { client.close() }
        var timeouts = Quiescer.Timeouts(config: { _ in nil })
        timeouts.freeze = 0.5
        timeouts.agent = 1
        func vm(agent: String?, pre: String? = nil, post: String? = nil) -> VMRecord {
            VMRecord(id: "id", name: "vm1", host: "h", storage: "local", cluster: nil, disks: [], qmp: qemu.qmpSocket,
                     guestAgent: agent, preFreeze: pre, postThaw: post, created: Date())
        }
        func take(_ record: VMRecord, peer: GuestAgentPeer?) throws -> (Quiescer.Outcome, String, Bool) {
            var status = "", frozen = false
            let before = try qemu.monitor.status()
            let outcome = try Quiescer(vm: record, qmp: client, timeouts: timeouts).takePoint {
                status = try qemu.monitor.status()
                frozen = peer?.frozen ?? false
            }
            XCTAssertEqual(try qemu.monitor.status(), before, "the VM is left as it was")
            XCTAssertFalse(peer?.frozen ?? false, "thawed afterwards")
            return (outcome, status, frozen)
        }

        var (outcome, status, frozen) = try take(vm(agent: nil), peer: nil)
        XCTAssertEqual(outcome.consistency, .crash, "prelaunch: not running")
        XCTAssertEqual(outcome.pauseMs, 0)
        XCTAssertEqual(status, "prelaunch")
        try qemu.resume()

        (outcome, status, frozen) = try take(vm(agent: nil), peer: nil)
        XCTAssertEqual(outcome.consistency, .crash)
        XCTAssertEqual(status, "paused", "offline: the point is taken while the VM is paused")
        XCTAssertTrue(outcome.reason.contains("no guest agent"), outcome.reason)
        XCTAssertLessThan(outcome.pauseMs, 100)

        let peer = try GuestAgentPeer(path: root + "/ga.sock")
        defer { peer.stop() }
        (outcome, status, frozen) = try take(vm(agent: peer.path), peer: peer)
        XCTAssertEqual(outcome.consistency, .filesystem, outcome.reason)
        XCTAssertEqual(status, "running")
        XCTAssertTrue(frozen, "online: the point is taken while the guest is frozen")
        XCTAssertTrue(outcome.reason.contains("no application hook"), outcome.reason)
        XCTAssertTrue(outcome.reason.contains("guest-fsfreeze-status said 'frozen' before the point"), outcome.reason)
        XCTAssertEqual(peer.commands, ["guest-sync-delimited", "guest-info", "guest-fsfreeze-status", "guest-get-fsinfo",
                                       "guest-fsfreeze-freeze", "guest-fsfreeze-status", "guest-fsfreeze-thaw"])

        let hookLog = root + "/hooks.log"
        (outcome, _, frozen) = try take(vm(agent: peer.path, pre: "echo \"pre $DPM_VM_NAME\" >> \(hookLog)", post: "echo post >> \(hookLog)"), peer: peer)
        XCTAssertEqual(outcome.consistency, .application, outcome.reason)
        XCTAssertEqual(try String(contentsOfFile: hookLog, encoding: .utf8), "pre vm1\npost\n")

        (outcome, _, _) = try take(vm(agent: peer.path, pre: "echo broken >&2; exit 3"), peer: peer)
        XCTAssertEqual(outcome.consistency, .filesystem)
        XCTAssertTrue(outcome.reason.contains("status 3") && outcome.reason.contains("broken"), outcome.reason)

        let odd = try GuestAgentPeer(path: root + "/odd.sock", filesystems: [("/", "ext4"), ("/srv", "fuse.sshfs")])
        defer { odd.stop() }
        (outcome, status, _) = try take(vm(agent: odd.path), peer: odd)
        XCTAssertEqual(outcome.consistency, .crash)
        XCTAssertTrue(outcome.reason.contains("/srv is fuse.sshfs"), outcome.reason)
        XCTAssertFalse(odd.commands.contains("guest-fsfreeze-freeze"))

        for behaviour in [GuestAgentPeer.Behaviour.failFreeze, .hangOnFreeze] {
            let bad = try GuestAgentPeer(path: root + "/bad.sock", behaviour: behaviour)
            defer { bad.stop() }
            (outcome, status, frozen) = try take(vm(agent: bad.path), peer: bad)
            XCTAssertEqual(outcome.consistency, .crash, "\(behaviour)")
            XCTAssertEqual(status, "paused", "\(behaviour): fell back to offline")
            XCTAssertFalse(frozen, "\(behaviour): thawed before the offline point")
            XCTAssertTrue(outcome.reason.contains("could not freeze"), outcome.reason)
            XCTAssertEqual(bad.commands.last, "guest-fsfreeze-thaw", "\(behaviour): \(bad.commands)")
        }
        let blocked = try GuestAgentPeer(path: root + "/blocked.sock", blocked: ["guest-fsfreeze-freeze"])
        defer { blocked.stop() }
        (outcome, status, _) = try take(vm(agent: blocked.path), peer: blocked)
        XCTAssertEqual(status, "paused")
        XCTAssertTrue(outcome.reason.contains("has guest-fsfreeze-freeze disabled"), outcome.reason)
        XCTAssertEqual(blocked.commands, ["guest-sync-delimited", "guest-info"], "no freeze is tried")

        let empty = try GuestAgentPeer(path: root + "/empty.sock", filesystems: [])
        defer { empty.stop() }
        (outcome, status, _) = try take(vm(agent: empty.path), peer: empty)
        XCTAssertEqual(status, "paused", "a freeze of nothing is no freeze")
        XCTAssertTrue(outcome.reason.contains("froze 0 filesystem(s)"), outcome.reason)
        XCTAssertEqual(empty.commands.last, "guest-fsfreeze-thaw")

        (outcome, _, _) = try take(vm(agent: root + "/nobody.sock"), peer: nil)
        XCTAssertTrue(outcome.reason.contains("does not answer"), outcome.reason)
    }

    private func waitFor(_ what: String, seconds: TimeInterval = 10, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else { XCTFail("timed out waiting for \(what)"); return }
            usleep(10_000)
        }
    }
}
