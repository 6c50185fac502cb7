import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

/// The NBD client against QEMU's NBD server, cross-checked with libnbd's tools (`nbdinfo
/// --map`, `nbdcopy`), and against a scripted server that sends hostile replies.
final class NBDTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        try TestSupport.require("qemu-system-x86_64")
        try TestSupport.require("qemu-img")
        root = try TestSupport.temporaryDirectory(self)
    }

    /// A QEMU exporting a qcow2 disk with data, zero clusters, holes and a disabled dirty
    /// bitmap "b0" recording some of the writes.
    func exportedDisk() throws -> (qemu: TestQEMU, socket: String) {
        let path = root + "/d.qcow2"
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "qcow2", path, "40M"]).status, 0)
        let qemu = try TestQEMU(self, directory: root, disks: [.init(path, format: "qcow2")])
        try qemu.write(disk: 0, pattern: 0x11, offset: 1 << 20, length: 64 << 10)
        try qemu.write(disk: 0, pattern: 0x22, offset: 10 << 20, length: 3 << 20)
        XCTAssertEqual(try qemu.monitor.humanMonitor("qemu-io drive0 \"write -z 11M 64k\""), "")
        try qemu.monitor.execute("block-dirty-bitmap-add", ["node": "disk0", "name": "b0"])
        try qemu.write(disk: 0, pattern: 0x33, offset: 20 << 20, length: 4096)
        try qemu.write(disk: 0, pattern: 0x44, offset: (30 << 20) + 65536, length: 200 << 10)
        try qemu.monitor.execute("block-dirty-bitmap-disable", ["node": "disk0", "name": "b0"])
        let socket = root + "/nbd.sock"
        try qemu.monitor.execute("nbd-server-start", ["addr": ["type": "unix", "data": ["path": socket]]])
        try qemu.monitor.execute("block-export-add", ["type": "nbd", "id": "e0", "node-name": "disk0", "name": "d", "writable": false, "bitmaps": ["b0"]])
        return (qemu, socket)
    }

    /// `nbdinfo --map[=CONTEXT]` as (offset, length, flags).
    func nbdinfoMap(_ uri: String, context: String? = nil) throws -> [NBDClient.Status] {
        let result = try runProcess(["nbdinfo", context.map { "--map=\($0)" } ?? "--map", uri])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3, let offset = UInt64(fields[0]), let length = UInt64(fields[1]), let flags = UInt32(fields[2]) else { return nil }
            return NBDClient.Status(offset: offset, length: length, flags: flags)
        }
    }

    func testBlockStatusMatchesNbdinfo() throws {
        try TestSupport.require("nbdinfo")
        let (_, socket) = try exportedDisk()
        let client = try NBDClient(socketPath: socket, export: "d", metaContexts: ["base:allocation", "qemu:dirty-bitmap:b0"])
        defer { client.close() }
        XCTAssertEqual(client.size, 40 << 20)
        XCTAssertEqual(Set(client.contexts.keys), ["base:allocation", "qemu:dirty-bitmap:b0"])
        let uri = "nbd+unix:///d?socket=\(socket)"
        let allocation = try client.blockStatus(context: "base:allocation", offset: 0, length: client.size)
        XCTAssertEqual(allocation, try nbdinfoMap(uri))
        XCTAssertTrue(allocation.contains { $0.offset <= 11 << 20 && $0.end > 11 << 20 && $0.flags & NBDProtocol.stateZero != 0 }, "the zero cluster")
        let dirty = try client.blockStatus(context: "qemu:dirty-bitmap:b0", offset: 0, length: client.size)
        XCTAssertEqual(dirty, try nbdinfoMap(uri, context: "qemu:dirty-bitmap:b0"))
        XCTAssertEqual(dirty.filter { $0.flags & NBDProtocol.stateDirty != 0 }.map { [$0.offset, $0.length] },
                       [[20 << 20, 64 << 10], [(30 << 20) + 65536, 256 << 10]], "64 KiB granularity")
        // A window in the middle is clipped to what was asked.
        let window = try client.blockStatus(context: "base:allocation", offset: (10 << 20) + 7, length: 100)
        XCTAssertEqual(window.map(\.offset), [(10 << 20) + 7])
        XCTAssertEqual(window.map(\.length), [100])
    }

    func testReadsMatchNbdcopy() throws {
        try TestSupport.require("nbdcopy")
        let (_, socket) = try exportedDisk()
        let copy = root + "/copy.raw"
        let result = try runProcess(["nbdcopy", "nbd+unix:///d?socket=\(socket)", copy])
        XCTAssertEqual(result.status, 0, result.stderr)
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: copy)))
        let client = try NBDClient(socketPath: socket, export: "d")
        defer { client.close() }
        var whole = [UInt8](repeating: 0xA5, count: expected.count)
        // 4 MiB pieces (what the host asks), then odd pieces across data/zero/hole borders.
        for offset in stride(from: 0, to: whole.count, by: 4 << 20) {
            try whole.withUnsafeMutableBytes { try client.read(offset: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: $0[offset..<min(offset + (4 << 20), $0.count)])) }
        }
        XCTAssertEqual(memcmp(whole, expected, expected.count), 0, "4 MiB reads equal nbdcopy's copy")
        for (offset, length) in [(1 << 20 - 5, 77), ((11 << 20) - 100, 70_000), ((13 << 20) - 1, 3), (0, 40 << 20)] {
            var piece = [UInt8](repeating: 0xA5, count: length)
            try piece.withUnsafeMutableBytes { try client.read(offset: UInt64(offset), into: $0) }
            let same = expected.withUnsafeBytes { memcmp(piece, $0.baseAddress! + offset, length) == 0 }
            XCTAssertTrue(same, "read at \(offset)+\(length)")
        }
    }

    func testRefusals() throws {
        let (_, socket) = try exportedDisk()
        XCTAssertThrowsError(try NBDClient(socketPath: socket, export: "nope")) { error in
            XCTAssertEqual((error as? PluginError)?.code, .notFound, "\(error)")
        }
        XCTAssertThrowsError(try NBDClient(socketPath: socket, export: "d", metaContexts: ["qemu:dirty-bitmap:missing"])) { error in
            XCTAssertEqual((error as? PluginError)?.code, .notFound, "\(error)")
        }
        let client = try NBDClient(socketPath: socket, export: "d")
        defer { client.close() }
        var buffer = [UInt8](repeating: 0, count: 10)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try client.read(offset: (40 << 20) - 5, into: $0) })
        XCTAssertThrowsError(try client.blockStatus(context: "base:allocation", offset: 0, length: 10), "not negotiated")
    }

    /// Replies that lie about cookies, offsets, coverage or lengths are refused, never trusted.
    func testHostileServerRepliesAreRefused() throws {
        let cases: [(String, (UInt64, UInt64, UInt32) -> [UInt8])] = [
            ("wrong cookie", { cookie, offset, length in FakeNBDServer.data(cookie: cookie + 1, offset: offset, length: length, done: true) }),
            ("chunk outside the read", { cookie, offset, length in FakeNBDServer.data(cookie: cookie, offset: offset + 4096, length: length, done: true) }),
            ("half the read", { cookie, offset, length in FakeNBDServer.data(cookie: cookie, offset: offset, length: length / 2, done: true) }),
            ("bad magic", { _, _, _ in [UInt8](repeating: 0x42, count: 32) }),
            ("hole past the read", { cookie, offset, _ in FakeNBDServer.hole(cookie: cookie, offset: offset, length: 1 << 30) }),
        ]
        for (name, reply) in cases {
            let server = try FakeNBDServer(path: root + "/fake.sock", reply: reply)
            defer { server.stop() }
            let client = try NBDClient(socketPath: server.path, export: "x", timeout: 2)
            var buffer = [UInt8](repeating: 0, count: 8192)
            XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try client.read(offset: 4096, into: $0) }, name) { error in
                XCTAssertEqual((error as? PluginError)?.code, .corrupt, "\(name): \(error)")
            }
            client.close()
        }
    }
}

/// A minimal NBD server speaking the fixed newstyle handshake, answering every request with
/// the bytes `reply(cookie, offset, length)` builds.
final class FakeNBDServer {
    let path: String
    private let fd: Int32

    init(path: String, reply: @escaping (UInt64, UInt64, UInt32) -> [UInt8]) throws {
        self.path = path
        fd = try TestUnixSocket.listen(path, backlog: 2)
        let listener = fd
        Thread {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            func read(_ count: Int) -> [UInt8]? {
                var bytes = [UInt8](repeating: 0, count: count)
                var got = 0
                while got < count {
                    let n = bytes.withUnsafeMutableBytes { recv(client, $0.baseAddress! + got, count - got, 0) }
                    if n <= 0 { return nil }
                    got += n
                }
                return bytes
            }
            func write(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
            var hello = NBDWriter()
            hello.u64(NBDProtocol.initialMagic); hello.u64(NBDProtocol.optionMagic); hello.u16(3)
            write(hello.bytes)
            guard read(4) != nil else { return }
            while let header = read(16) {
                var reader = NBDReader(header)
                _ = reader.u64()
                let option = reader.u32() ?? 0
                guard let length = reader.u32(), read(Int(length)) != nil else { return }
                func optionReply(_ type: UInt32, _ data: [UInt8] = []) {
                    var out = NBDWriter()
                    out.u64(NBDProtocol.optionReplyMagic); out.u32(option); out.u32(type); out.u32(UInt32(data.count))
                    write(out.bytes + data)
                }
                if option == NBDProtocol.Option.go {
                    var info = NBDWriter()
                    info.u16(NBDProtocol.Info.export); info.u64(1 << 20); info.u16(1)
                    optionReply(NBDProtocol.Reply.info, info.bytes)
                    optionReply(NBDProtocol.Reply.ack)
                    break
                }
                optionReply(NBDProtocol.Reply.ack)
            }
            while let request = read(28) {
                var reader = NBDReader(request)
                _ = reader.u32(); _ = reader.u16()
                let type = reader.u16() ?? 0
                if type == NBDProtocol.Command.disconnect { return }
                let cookie = reader.u64() ?? 0, offset = reader.u64() ?? 0, length = reader.u32() ?? 0
                write(reply(cookie, offset, length))
            }
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    static func data(cookie: UInt64, offset: UInt64, length: UInt32, done: Bool) -> [UInt8] {
        var out = NBDWriter()
        out.u32(NBDProtocol.structuredReplyMagic); out.u16(done ? NBDProtocol.replyFlagDone : 0); out.u16(NBDProtocol.ChunkType.offsetData)
        out.u64(cookie); out.u32(length + 8); out.u64(offset)
        return out.bytes + [UInt8](repeating: 0x5A, count: Int(length))
    }

    static func hole(cookie: UInt64, offset: UInt64, length: UInt32) -> [UInt8] {
        var out = NBDWriter()
        out.u32(NBDProtocol.structuredReplyMagic); out.u16(NBDProtocol.replyFlagDone); out.u16(NBDProtocol.ChunkType.offsetHole)
        out.u64(cookie); out.u32(12); out.u64(offset); out.u32(length)
        return out.bytes
    }
}
