import Digests
import Foundation

/// The sending side of a chunk negotiation (see `ChunkFrames`): offers digests in batches and
/// sends only the chunks the receiver asks for.
///
/// Use: `add` every chunk in order, then `finish`. Not thread-safe; one sender per job at a
/// time. Memory: the contents of at most `window` unanswered batches are held (or only their
/// loaders, with the lazy `add`).
public final class ChunkSender {
    public struct Limits: Sendable {
        /// Digests per offer (1…4096).
        public var batchCount = 256
        /// A batch is offered early once its chunks hold this many bytes.
        public var batchBytes = 16 << 20
        /// Offers that may wait for their answer before `add` waits.
        public var window = 4

        public init() {}
    }

    private struct Pending {
        let digest: ChunkDigest
        let content: () throws -> [UInt8]
    }

    public let job: ChannelJob
    public let limits: Limits
    /// What this side sent so far.
    public private(set) var counters = ChunkTransferCounters()
    private var batch: [Pending] = []
    private var batchBytes = 0
    private var unanswered: [(number: UInt32, chunks: [Pending])] = []
    private var nextBatch: UInt32 = 0

    public init(job: ChannelJob, limits: Limits = Limits()) {
        self.job = job
        var limits = limits
        limits.batchCount = min(max(limits.batchCount, 1), ChunkFrames.maxDigestsPerOffer)
        limits.window = max(limits.window, 1)
        self.limits = limits
    }

    /// Offers a chunk whose SHA-256 is computed here.
    public func add(_ content: [UInt8]) throws {
        try add(digest: ChannelCrypto.sha256(content), length: content.count) { content }
    }

    /// Offers a chunk by digest; `content` is called only if the receiver wants it (so a
    /// re-readable source need not keep the bytes). `digest` must be the SHA-256 of the
    /// content: the receiver re-hashes and refuses a mismatch.
    public func add(digest: ChunkDigest, length: Int, content: @escaping () throws -> [UInt8]) throws {
        batch.append(Pending(digest: digest, content: content))
        batchBytes += length
        counters.offered += 1
        counters.offeredBytes += length
        if batch.count >= limits.batchCount || batchBytes >= limits.batchBytes { try offerBatch() }
    }

    /// Offers what is left, sends what the receiver still wants and waits until it has stored
    /// all of it. Returns the receiver's counters (checked against this side's).
    public func finish() throws -> ChunkTransferCounters {
        if !batch.isEmpty { try offerBatch() }
        while !unanswered.isEmpty { try answerOldest() }
        struct Summary: Codable { var batches, offered, offeredBytes, sent, bytes: Int }
        try job.send(.offersDone, json: Summary(batches: counters.batches, offered: counters.offered,
                                                offeredBytes: counters.offeredBytes, sent: counters.sent, bytes: counters.bytes))
        let received = try job.receive(.chunksReceived).decode(ChunkTransferCounters.self)
        guard received.sent == counters.sent, received.bytes == counters.bytes, received.offered == counters.offered else {
            throw ChannelError(.protocolViolation, "\(job.session.peerDescription) counted \(received.sent) chunks (\(received.bytes) bytes) of \(received.offered) offered, but this side sent \(counters.sent) (\(counters.bytes) bytes) of \(counters.offered)")
        }
        return received
    }

    private func offerBatch() throws {
        try job.send(.offer, ChunkFrames.offer(batch: nextBatch, digests: batch.map(\.digest)))
        unanswered.append((nextBatch, batch))
        nextBatch &+= 1
        counters.batches += 1
        batch = []
        batchBytes = 0
        while unanswered.count > limits.window { try answerOldest() }
    }

    /// Waits for the answer to the oldest offer and sends the chunks it asks for.
    private func answerOldest() throws {
        let oldest = unanswered.removeFirst()
        let (number, lacking) = try ChunkFrames.parseWanted(try job.receive(.wanted).payload)
        guard number == oldest.number, lacking.count == oldest.chunks.count else {
            throw ChannelError(.protocolViolation, "\(job.session.peerDescription) answered offer \(number) for \(lacking.count) digests where the answer to offer \(oldest.number) of \(oldest.chunks.count) belongs")
        }
        for (chunk, wanted) in zip(oldest.chunks, lacking) where wanted {
            let content = try chunk.content()
            guard !content.isEmpty else {
                throw ChannelError(.invalid, "chunk \(chunk.digest) is empty; empty chunks are never offered")
            }
            try job.send(.chunk, chunk.digest.raw + content)
            counters.needed += 1
            counters.sent += 1
            counters.bytes += content.count
        }
    }
}
