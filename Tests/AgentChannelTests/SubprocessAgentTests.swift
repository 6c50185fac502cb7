@testable import AgentChannel
import Foundation
import TestSupport
import XCTest

/// The agent side runs as its own process (`agent-channel-peer`) over TCP on loopback.
final class SubprocessAgentTests: XCTestCase {
    struct SendChunks: Codable {
        var op = "send-chunks"
        var count: Int
        var size: Int
        var seed: UInt64
        var changed: [Int] = []
    }

    func testAgentProcessEnrollsThenSendsOnlyMissingChunks() throws {
        let fixture = try ChannelFixture(self)
        let code = try fixture.registry.issueCode()
        let admitting = fixture.admitNext()
        let peer = try AgentProcess(fixture, name: "db01", extra: ["--enroll", code.description])
        let admission = try admitting.value()
        XCTAssertTrue(admission.enrolledNow)
        XCTAssertEqual(admission.agent.name, "db01")
        XCTAssertTrue(try peer.joinedLine().contains("\"enrolled\": true"))

        let stored = StoredChunks()
        let has: (ChunkDigest) -> Bool = { stored.digests.contains($0) }
        let first = try exchange(admission.session, SendChunks(count: 30, size: 32 << 10, seed: 5), stored: stored, has: has)
        XCTAssertEqual(first.needed, 30)
        XCTAssertEqual(first.bytes, 30 * (32 << 10))
        // The next run changes two chunks: only those cross.
        let second = try exchange(admission.session, SendChunks(count: 30, size: 32 << 10, seed: 5, changed: [3, 17]), stored: stored, has: has)
        XCTAssertEqual(second.offered, 30)
        XCTAssertEqual(second.needed, 2)
        XCTAssertEqual(second.sent, 2)
        XCTAssertEqual(second.bytes, 2 * (32 << 10))
        XCTAssertEqual(stored.count, 32)
        admission.session.close(reason: "test done")
        XCTAssertEqual(try peer.exitStatus(), 0, peer.stderr)

        // A second process of the same agent joins through its pinned server file alone.
        let pinnedAdmission = fixture.admitNext()
        let pinnedPeer = try AgentProcess(fixture, name: "db01")
        let again = try pinnedAdmission.value()
        XCTAssertFalse(again.enrolledNow)
        XCTAssertEqual(again.session.peerPin, admission.session.peerPin)
        again.session.close()
        XCTAssertEqual(try pinnedPeer.exitStatus(), 0, pinnedPeer.stderr)
    }

    func testKilledAgentProcessFailsTheTransferWithTheReason() throws {
        let fixture = try ChannelFixture(self)
        try fixture.enroll("db01")
        let admitting = fixture.admitNext()
        let peer = try AgentProcess(fixture, name: "db01")
        let session = try admitting.value().session
        let stored = StoredChunks()
        let job = try session.openJob(request: SendChunks(count: 100_000, size: 64 << 10, seed: 9))
        let receiving = Background("the chunk receiver") { try ChunkReceiver(job: job, has: { _ in false }, store: { d, _ in stored.add(d, []) }).run() }
        XCTAssertTrue(eventually { stored.count >= 10 }, "chunks started to arrive")
        peer.kill(SIGKILL)
        let error = channelError(try receiving.wait())
        XCTAssertEqual(error?.code, .connectionLost)
        fixture.assertNames(error, ["agent db01", "was cut"])
        XCTAssertLessThan(stored.count, 100_000)
        session.close()
    }

    func testStoppedAgentProcessIsDeclaredGone() throws {
        let fixture = try ChannelFixture(self)
        try fixture.enroll("db01")
        fixture.options.keepAliveInterval = 0.2
        fixture.options.keepAliveTimeout = 3
        let admitting = fixture.admitNext()
        let peer = try AgentProcess(fixture, name: "db01", extra: ["--keep-alive", "0.2"])
        let session = try admitting.value().session
        _ = try peer.joinedLine()
        peer.kill(SIGSTOP)  // alive, socket open, and silent
        defer { peer.kill(SIGKILL); peer.kill(SIGCONT) }
        XCTAssertTrue(eventually { !session.isOpen })
        XCTAssertEqual(session.failure?.code, .peerGone)
        fixture.assertNames(session.failure, ["agent db01", "not even a keep-alive"])
        session.close()
    }

    func testServerCancelsAJobInTheAgentProcess() throws {
        let fixture = try ChannelFixture(self)
        try fixture.enroll("db01")
        let admitting = fixture.admitNext()
        let peer = try AgentProcess(fixture, name: "db01")
        let session = try admitting.value().session
        let job = try session.openJob(request: ["op": "wait-for-cancel"])
        job.cancel(reason: "operator stopped the backup")
        let (report, request) = try session.acceptJob(timeout: 30)
        XCTAssertEqual(try request.decode([String: String].self)["cancelled"], "by the server: operator stopped the backup")
        XCTAssertEqual(try report.receive(timeout: 30).type, .end)
        session.close()
        XCTAssertEqual(try peer.exitStatus(), 0, peer.stderr)
    }

    func testRefusedAgentProcessPrintsTheReason() throws {
        let fixture = try ChannelFixture(self)
        // Never enrolled, but it knows the server's key.
        try PinnedServer(server: "dpm01", pin: fixture.server.pin, agent: "rogue", enrolledAt: Date())
            .save(folder: fixture.identityFolder("rogue"))
        let admitting = fixture.admitNext()
        let peer = try AgentProcess(fixture, name: "rogue")
        XCTAssertEqual(channelError(try admitting.wait())?.code, .unknownAgent)
        XCTAssertEqual(try peer.exitStatus(), 1)
        XCTAssertTrue(peer.stderr.contains("agent rogue"), peer.stderr)
        XCTAssertTrue(peer.stderr.contains("is not enrolled on server dpm01"), peer.stderr)
        XCTAssertTrue(peer.stderr.contains("dpm agent enroll"), peer.stderr)
    }

    /// Runs one `send-chunks` job and returns the receiver's counters, checked against the agent's reply.
    private func exchange(_ session: ChannelSession, _ request: SendChunks, stored: StoredChunks,
                          has: @escaping (ChunkDigest) -> Bool) throws -> ChunkTransferCounters {
        let job = try session.openJob(request: request)
        let counters = try ChunkReceiver(job: job, has: has, store: stored.add).run(timeout: 60)
        XCTAssertEqual(try job.receive(.reply, timeout: 60).decode(ChunkTransferCounters.self), counters)
        XCTAssertEqual(try job.receive(timeout: 60).type, .end)
        return counters
    }
}

/// `agent-channel-peer` running against a fixture's server.
final class AgentProcess {
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private var errorText: String?

    init(_ fixture: ChannelFixture, name: String, extra: [String] = []) throws {
        let executable = BuiltProducts.directory + "/agent-channel-peer"
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw XCTSkip("\(executable) is not built; run `swift build --build-tests`")
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--identity", fixture.identityFolder(name), "--name", name,
                             "--connect", "127.0.0.1:\(fixture.listener.port)"] + extra
        process.standardOutput = output
        process.standardError = errors
        try process.run()
    }

    deinit {
        if process.isRunning { kill(SIGKILL) }
    }

    func kill(_ signal: Int32) {
        Glibc.kill(process.processIdentifier, signal)
    }

    /// The "joined" line the agent prints once admitted.
    func joinedLine() throws -> String {
        var line = [UInt8]()
        while !line.contains(UInt8(ascii: "\n")) {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty else { break }
            line += data
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// Waits (bounded) for the process to exit.
    func exitStatus(timeout: TimeInterval = 60) throws -> Int32 {
        guard eventually(within: timeout, { !process.isRunning }) else {
            kill(SIGKILL)
            XCTFail("agent-channel-peer did not exit within \(timeout) s")
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// What the process wrote to stderr (read once it has exited).
    var stderr: String {
        if let errorText { return errorText }
        if process.isRunning { return "(still running)" }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        errorText = text
        return text
    }
}
