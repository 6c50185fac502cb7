@testable import AgentChannel
import Digests
import Foundation
import TestSupport
import XCTest

/// Only the chunks the receiver lacks cross the network, and every chunk is re-hashed.
final class ChunkNegotiationTests: XCTestCase {
    func testOnlyMissingChunksCross() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let chunkSize = 64 << 10
        let chunks = (0..<40).map { TestData.random(chunkSize, seed: UInt64($0)) }
        // The server has chunks 0..<25 already (say, from the previous point).
        let present = Set(chunks[0..<25].map { ChannelCrypto.sha256($0) })
        // The stream repeats chunks 30..<35 at its end (in-session duplicates).
        let stream = chunks + chunks[30..<35]
        let stored = StoredChunks()

        let serverSentBefore = server.session.bytesSent
        let agentSentBefore = agent.session.bytesSent
        let receiving = stored.receive(on: server.session) { present.contains($0) }
        let job = try agent.session.openJob(request: ["op": "backup"])
        var limits = ChunkSender.Limits()
        limits.batchCount = 4  // many batches, with several offers in flight
        limits.window = 3
        let sender = ChunkSender(job: job, limits: limits)
        for chunk in stream { try sender.add(chunk) }
        let senderSide = try sender.finish()
        let receiverSide = try receiving.value()

        XCTAssertEqual(receiverSide.offered, 45)
        XCTAssertEqual(receiverSide.needed, 15, "chunks 25..<40, each asked for once")
        XCTAssertEqual(receiverSide.sent, 15)
        XCTAssertEqual(receiverSide.bytes, 15 * chunkSize)
        XCTAssertEqual(receiverSide.offeredBytes, 45 * chunkSize)
        XCTAssertEqual(receiverSide.batches, 12)
        XCTAssertEqual(senderSide, receiverSide, "both sides counted the same")
        XCTAssertEqual(sender.counters.sent, 15)
        XCTAssertEqual(stored.digests, Set(chunks[25..<40].map { ChannelCrypto.sha256($0) }))
        XCTAssertEqual(stored.count, 15, "nothing stored twice")
        for (digest, content) in stored.contents { XCTAssertEqual(ChannelCrypto.sha256(content), digest) }

        // On the wire: the 15 chunks plus digests and headers, far below the 45 offered.
        let agentSent = agent.session.bytesSent - agentSentBefore
        let serverSent = server.session.bytesSent - serverSentBefore
        XCTAssertGreaterThanOrEqual(agentSent, 15 * chunkSize)
        XCTAssertLessThan(agentSent, 15 * chunkSize + 8 << 10, "offers of 45 digests and frame headers cost little")
        XCTAssertLessThan(serverSent, 2 << 10, "the answers are bitmaps")
        agent.session.close()
        server.session.close()
    }

    /// An agent that sends content not matching its digest is refused; nothing of it is stored.
    func testCorruptedChunkIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let stored = StoredChunks()
        let receiving = stored.receive(on: server.session)
        let job = try agent.session.openJob(request: ["op": "backup"])
        let sender = ChunkSender(job: job)
        let good = TestData.random(4096, seed: 1)
        var damaged = TestData.random(4096, seed: 2)
        let claimed = ChannelCrypto.sha256(damaged)
        damaged[100] ^= 0x01  // one bit flipped after hashing
        try sender.add(good)
        try sender.add(digest: claimed, length: damaged.count) { damaged }
        let senderError = channelError(Result { try sender.finish() })
        let receiverError = channelError(try receiving.wait())

        XCTAssertEqual(receiverError?.code, .corruptChunk)
        fixture.assertNames(receiverError, ["agent db01", claimed.hex, ChannelCrypto.sha256(damaged).hex, "refused"])
        XCTAssertEqual(senderError?.code, .corruptChunk)
        XCTAssertEqual(senderError?.remote, true, "the agent is told why")
        XCTAssertEqual(stored.digests, [ChannelCrypto.sha256(good)], "only the good chunk was stored")
        agent.session.close()
        server.session.close()
    }

    /// A chunk nobody asked for is a protocol violation, not free storage.
    func testUnsolicitedChunkIsRefused() throws {
        let fixture = try ChannelFixture(self)
        let (agent, server) = try fixture.enroll("db01")
        let stored = StoredChunks()
        let receiving = stored.receive(on: server.session)
        let job = try agent.session.openJob(request: ["op": "backup"])
        let content = TestData.random(4096, seed: 3)
        try job.send(.chunk, ChannelCrypto.sha256(content).raw + content)
        let error = channelError(try receiving.wait())
        XCTAssertEqual(error?.code, .protocolViolation)
        fixture.assertNames(error, ["did not ask for"])
        XCTAssertEqual(stored.count, 0)
        agent.session.close()
        server.session.close()
    }

    func testOfferAndWantedPayloadsRoundTrip() throws {
        let digests = (0..<9).map { ChannelCrypto.sha256([UInt8($0)]) }
        let offer = try ChunkFrames.parseOffer(ChunkFrames.offer(batch: 7, digests: digests))
        XCTAssertEqual(offer.batch, 7)
        XCTAssertEqual(offer.digests, digests)
        let lacking = [true, false, false, true, true, false, false, false, true]
        let wanted = ChunkFrames.wanted(batch: 7, lacking: lacking)
        XCTAssertEqual(wanted.count, 8 + 2)
        XCTAssertEqual(Array(wanted[8...]), [0b0001_1001, 0b0000_0001], "bit i of byte i/8, least significant first")
        XCTAssertEqual(try ChunkFrames.parseWanted(wanted).lacking, lacking)
        XCTAssertThrowsError(try ChunkFrames.parseOffer([0, 0, 0, 1] + [UInt8](repeating: 0, count: 31)))
        XCTAssertThrowsError(try ChunkFrames.parseWanted(BigEndian.bytes(0) + BigEndian.bytes(9) + [0]))
    }
}

/// What a receiver stored, shared between threads.
final class StoredChunks: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var contents: [ChunkDigest: [UInt8]] = [:]
    private var stores = 0

    func add(_ digest: ChunkDigest, _ content: [UInt8]) {
        lock.lock()
        contents[digest] = content
        stores += 1
        lock.unlock()
    }

    /// Runs a ChunkReceiver in the background on the next job the peer opens, storing here.
    func receive(on session: ChannelSession, has: @escaping (ChunkDigest) -> Bool = { _ in false }) -> Background<ChunkTransferCounters> {
        Background("the chunk receiver") { [self] in
            let (job, _) = try session.acceptJob(timeout: 20)
            return try ChunkReceiver(job: job, has: has, store: add).run()
        }
    }

    var digests: Set<ChunkDigest> { lock.lock(); defer { lock.unlock() }; return Set(contents.keys) }
    var count: Int { lock.lock(); defer { lock.unlock() }; return stores }
}
