import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

/// The QMP client, disk discovery, the point-in-time view and the change tracker against a
/// real qemu-system-x86_64 (skipped without it, failed in CI).
final class QMPTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        try TestSupport.require("qemu-system-x86_64")
        try TestSupport.require("qemu-img")
        root = try TestSupport.temporaryDirectory(self)
    }

    func image(_ name: String, format: String, size: String = "64M", options: [String] = []) throws -> String {
        let path = root + "/" + name
        let result = try runProcess(["qemu-img", "create", "-q", "-f", format] + options + [path, size])
        XCTAssertEqual(result.status, 0, result.stderr)
        return path
    }

    func twoDiskVM(wiring: TestQEMU.Wiring = .drives) throws -> TestQEMU {
        let vhdx = try image("a.vhdx", format: "vhdx", options: ["-o", "block_size=1M"])
        let qcow2 = try image("b.qcow2", format: "qcow2", size: "48M")
        return try TestQEMU(self, directory: root, disks: [.init(vhdx, format: "vhdx"), .init(qcow2, format: "qcow2")], wiring: wiring)
    }

    func testHandshakeCommandsEventsAndErrors() throws {
        let qemu = try twoDiskVM()
        let client = try QMPClient(path: qemu.qmpSocket)
        defer { client.close() }
        XCTAssertTrue(client.version.hasPrefix("7.") || client.version.hasPrefix("8.") || client.version.hasPrefix("9."), client.version)
        XCTAssertEqual(client.peerProcessID, qemu.pid, "SO_PEERCRED names the QEMU process")
        XCTAssertEqual(try client.status().status, "prelaunch")
        // `cont` emits a RESUME event before its return: the event is skipped.
        try client.execute("cont")
        XCTAssertEqual(try client.status().running, true)
        XCTAssertThrowsError(try client.execute("no-such-command")) { error in
            XCTAssertEqual((error as? QMPClient.CommandError)?.errorClass, "CommandNotFound", "\(error)")
        }
        XCTAssertThrowsError(try client.run("blockdev-del", ["node-name": .string("nope")], doing: "removing nope")) { error in
            XCTAssertTrue("\(error)".contains("removing nope"), "\(error)")
        }
        XCTAssertEqual(try client.humanMonitor("qemu-io drive0 \"write -P 0x5a 1M 64k\""), "")
        XCTAssertTrue(try client.humanMonitor("qemu-io nodrive \"write 0 512\"").contains("rror"))
    }

    func testDiscoversDisksThroughBackendsDevicesAndBareNodes() throws {
        for wiring in [TestQEMU.Wiring.drives, .devices, .nodesOnly] {
            let qemu = try twoDiskVM(wiring: wiring)
            let client = try QMPClient(path: qemu.qmpSocket)
            let disks = try QEMUBlockGraph.disks(client)
            client.close()
            XCTAssertEqual(disks.map(\.node), ["disk0", "disk1"], "\(wiring)")
            XCTAssertEqual(disks.map(\.file), [root + "/a.vhdx", root + "/b.qcow2"], "\(wiring)")
            XCTAssertEqual(disks.map(\.format), [.vhdx, .qcow2])
            XCTAssertEqual(disks.map(\.virtualSize), [64 << 20, 48 << 20])
            XCTAssertEqual(disks.map(\.clusterSize), [1 << 20, 64 << 10])
            if wiring != .nodesOnly { XCTAssertEqual(disks.map(\.device), ["drive0", "drive1"]) }
            if wiring == .nodesOnly { XCTAssertEqual(disks.map(\.device), ["disk0", "disk1"]) }
            qemu.stop()
        }
    }

    func testSilentOrForeignPeersFailInTime() throws {
        let path = root + "/silent.sock"
        let listener = try FakeListener(path: path) { _ in }  // accepts, never speaks
        defer { listener.stop() }
        let started = Date()
        XCTAssertThrowsError(try QMPClient(path: path, timeout: 0.3)) { error in
            XCTAssertEqual((error as? PluginError)?.code, .transient, "\(error)")
            XCTAssertTrue("\(error)".contains("another client may hold this monitor"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        let foreign = try FakeListener(path: root + "/ga.sock") { fd in
            let line = Array("{\"return\": {}}\n".utf8)
            _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        defer { foreign.stop() }
        XCTAssertThrowsError(try QMPClient(path: root + "/ga.sock", timeout: 2)) { error in
            XCTAssertTrue("\(error)".contains("did not greet with QMP"), "\(error)")
        }
        XCTAssertThrowsError(try QMPClient(path: root + "/missing.sock")) { error in
            XCTAssertEqual((error as? PluginError)?.code, .notFound, "\(error)")
        }
        XCTAssertThrowsError(try QMPClient(path: "relative.sock"))
    }

    /// The fleecing view shows the disks at the point, however they change afterwards, and
    /// its teardown leaves nothing in QEMU or on disk.
    func testPointInTimeViewAndTeardown() throws {
        let qemu = try twoDiskVM()
        try qemu.resume()
        try qemu.write(disk: 0, pattern: 0x11, offset: 1 << 20, length: 64 << 10)
        try qemu.write(disk: 1, pattern: 0x22, offset: 2 << 20, length: 64 << 10)
        let client = try QMPClient(path: qemu.qmpSocket)
        defer { client.close() }
        let names = FleeceNames(vmID: "0a1b2c3d-0000-0000-0000-000000000000", stateDirectory: root)
        let disks = try QEMUBlockGraph.disks(client)
        let view = PointInTimeView(qmp: client, names: names, disks: disks)
        try view.prepare()
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/.dpm-0a1b2c3d-fleece0.qcow2"), "the overlay lives beside the disk")
        try view.takePoint(extra: [])
        // After the point: overwrite both regions and write a new one.
        try qemu.write(disk: 0, pattern: 0xEE, offset: 1 << 20, length: 64 << 10)
        try qemu.write(disk: 1, pattern: 0xEE, offset: 2 << 20, length: 64 << 10)
        try qemu.write(disk: 0, pattern: 0xEE, offset: 9 << 20, length: 64 << 10)
        let clients = try view.open(bitmaps: [nil, nil])
        XCTAssertEqual(clients.map(\.size), [64 << 20, 48 << 20])
        for (index, expected) in [(0, UInt8(0x11)), (1, UInt8(0x22))] {
            var buffer = [UInt8](repeating: 0xFF, count: 64 << 10)
            try buffer.withUnsafeMutableBytes { try clients[index].read(offset: UInt64(index + 1) << 20, into: $0) }
            XCTAssertEqual(Set(buffer), [expected], "disk\(index) reads as at the point")
        }
        var late = [UInt8](repeating: 0xFF, count: 4096)
        try late.withUnsafeMutableBytes { try clients[0].read(offset: 9 << 20, into: $0) }
        XCTAssertEqual(Set(late), [0], "a write after the point is not visible")
        // While open, QEMU lists the overlay, job, export and an anonymous bitmap of the job.
        let during = try qemu.objects()
        XCTAssertEqual(during.exports.count, 2)
        XCTAssertEqual(during.jobs.count, 2)
        XCTAssertTrue(during.nodes.contains("dpm-0a1b2c3d-fl0"), "\(during.nodes)")
        XCTAssertEqual(try QEMUBlockGraph.bitmaps(client, node: "disk0"), [], "anonymous bitmaps are skipped")

        XCTAssertEqual(view.close(), [])
        let after = try qemu.objects()
        XCTAssertEqual(after.nodes + after.exports + after.jobs, [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix(".dpm") || $0.hasSuffix("nbd.sock") }, [])
    }

    /// A backup killed midway leaves its view behind; the next `clear` removes all of it.
    func testClearRemovesWhatAKilledBackupLeft() throws {
        let qemu = try twoDiskVM()
        let names = FleeceNames(vmID: "feedface-0000", stateDirectory: root)
        var client = try QMPClient(path: qemu.qmpSocket)
        let disks = try QEMUBlockGraph.disks(client)
        let view = PointInTimeView(qmp: client, names: names, disks: disks)
        try view.prepare()
        try view.takePoint(extra: [])
        _ = try view.open(bitmaps: [nil, nil])
        client.close()  // "killed": no teardown
        XCTAssertFalse(try qemu.objects().nodes.isEmpty)
        client = try QMPClient(path: qemu.qmpSocket)
        defer { client.close() }
        XCTAssertEqual(PointInTimeView.clear(qmp: client, names: names, disks: disks), [])
        let after = try qemu.objects()
        XCTAssertEqual(after.nodes + after.exports + after.jobs, [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: names.nbdSocket))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix(".dpm") }, [])
    }

    /// Generations of bitmaps: commit moves the token on; rollback folds the new bitmap back
    /// so the old token still covers every write; a restart of QEMU untrusts VHDX bitmaps.
    func testChangeTrackerCommitRollbackAndRestart() throws {
        let qemu = try twoDiskVM()
        try qemu.resume()
        let names = FleeceNames(vmID: "c0ffee00", stateDirectory: root)
        func point(_ token: String?, commit: Bool, between: () throws -> Void = {}) throws -> (ChangeTracker, String?) {
            let client = try QMPClient(path: qemu.qmpSocket)
            defer { client.close() }
            let disks = try QEMUBlockGraph.disks(client)
            let tracker = try ChangeTracker(qmp: client, names: names, disks: disks, previousToken: token,
                                            instance: TrackingToken.instance(of: client.peerProcessID))
            let view = PointInTimeView(qmp: client, names: names, disks: disks)
            try view.prepare()
            try view.takePoint(extra: tracker.transactionActions)
            tracker.started = true
            try between()
            _ = try view.open(bitmaps: tracker.plans.map(\.previous))
            XCTAssertEqual(view.close(), [])
            if commit { return (tracker, tracker.commit().token) }
            XCTAssertEqual(tracker.rollback(), [])
            return (tracker, nil)
        }
        let (first, token1) = try point(nil, commit: true)
        XCTAssertEqual(first.plans.map(\.previous), [nil, nil])
        XCTAssertEqual(first.plans.map(\.persistent), [false, true], "persistent bitmaps on qcow2 only")
        let parsed = try XCTUnwrap(token1.flatMap { TrackingToken(text: $0) })
        XCTAssertEqual(parsed.disks.map(\.bitmap), ["dpm-c0ffee00-g1", "dpm-c0ffee00-g1"])
        try qemu.write(disk: 0, pattern: 1, offset: 5 << 20, length: 4096)

        let (second, _) = try point(token1, commit: false)
        XCTAssertEqual(second.plans.map(\.previous), ["dpm-c0ffee00-g1", "dpm-c0ffee00-g1"])
        XCTAssertEqual(second.changesContext(0, since: token1!), nil, "no changes once rolled back")
        XCTAssertEqual(try qemu.objects().bitmaps["disk0"], ["dpm-c0ffee00-g1"], "the rollback removed g2")

        let (third, token3) = try point(token1, commit: true)
        XCTAssertEqual(third.plans[0].next, "dpm-c0ffee00-g2", "the rolled-back generation was never in a token")
        XCTAssertEqual(try qemu.objects().bitmaps["disk0"], ["dpm-c0ffee00-g2"], "one bitmap per disk after a commit")

        try qemu.restart()
        try qemu.resume()
        let (fourth, _) = try point(token3, commit: true)
        XCTAssertNil(fourth.plans[0].previous)
        XCTAssertTrue(fourth.plans[0].untrusted?.contains("QEMU restarted") == true, fourth.plans[0].untrusted ?? "")
        XCTAssertEqual(fourth.plans[1].previous, "dpm-c0ffee00-g2", "the qcow2 bitmap was stored and reloaded")
        XCTAssertTrue(fourth.notes.contains { $0.contains("continued across a QEMU restart") }, "\(fourth.notes)")
        XCTAssertNil(TrackingToken(text: "at-rest-v1;1:2:3"))
        XCTAssertNil(TrackingToken(text: "qemu-cbt-v1:{\"instance\":1}"))
    }
}

/// A unix-socket listener that runs `serve` on each connection, for misbehaving peers.
final class FakeListener {
    let path: String
    private var fd: Int32

    init(path: String, serve: @escaping (Int32) -> Void) throws {
        self.path = path
        fd = try TestUnixSocket.listen(path, backlog: 4)
        let listener = fd
        Thread {
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                serve(client)
                Thread.sleep(forTimeInterval: 5)
                close(client)
            }
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
