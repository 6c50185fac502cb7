import Digests
import Foundation

/// The receiving side of a chunk negotiation (see `ChunkFrames`): answers each offer with the
/// digests it lacks, re-hashes every chunk that arrives and refuses one whose content does not
/// match its digest. An agent is never trusted with the store.
public final class ChunkReceiver {
    public let job: ChannelJob
    private let has: (ChunkDigest) throws -> Bool
    private let store: (ChunkDigest, [UInt8]) throws -> Void

    /// - Parameters:
    ///   - has: whether this side already holds a chunk (for example in the data source's
    ///     previous point or in this session); asked once per distinct digest.
    ///   - store: takes a chunk whose content has been checked against its digest.
    public init(job: ChannelJob, has: @escaping (ChunkDigest) throws -> Bool,
                store: @escaping (ChunkDigest, [UInt8]) throws -> Void) {
        self.job = job
        self.has = has
        self.store = store
    }

    /// Runs the exchange to its end and returns what crossed. On any failure the sender gets
    /// an error frame with the reason, and the same error is thrown here.
    /// - Parameter timeout: how long to wait for each frame (nil: rely on the keep-alive).
    public func run(timeout: TimeInterval? = nil) throws -> ChunkTransferCounters {
        var counters = ChunkTransferCounters()
        var asked = Set<ChunkDigest>()
        var missing = Set<ChunkDigest>()
        var expectedBatch: UInt32 = 0
        do {
            while true {
                let frame = try job.receive(timeout: timeout)
                switch frame.type {
                case .offer:
                    let (number, digests) = try ChunkFrames.parseOffer(frame.payload)
                    guard number == expectedBatch else {
                        throw ChannelError(.protocolViolation, "\(job.session.peerDescription) sent offer \(number) where offer \(expectedBatch) belongs")
                    }
                    expectedBatch &+= 1
                    var lacking: [Bool] = []
                    for digest in digests {
                        let lacks = try !asked.contains(digest) && !callback { try has(digest) }
                        if lacks {
                            asked.insert(digest)
                            missing.insert(digest)
                        }
                        lacking.append(lacks)
                    }
                    counters.offered += digests.count
                    counters.needed += lacking.filter { $0 }.count
                    counters.batches += 1
                    try job.send(.wanted, ChunkFrames.wanted(batch: number, lacking: lacking))
                case .chunk:
                    let digest = try ChunkFrames.parseChunk(frame.payload)
                    guard missing.contains(digest) else {
                        throw ChannelError(.protocolViolation, "\(job.session.peerDescription) sent chunk \(digest), which this side did not ask for")
                    }
                    let actual = frame.payload.withUnsafeBytes { ChannelCrypto.sha256(UnsafeRawBufferPointer(rebasing: $0[32...])) }
                    guard actual == digest else {
                        throw ChannelError(.corruptChunk, "\(job.session.peerDescription) sent chunk \(digest) whose \(frame.payload.count - 32) bytes hash to \(actual): the chunk was refused and nothing of it stored. The agent's data or memory is damaged, or it is not trustworthy")
                    }
                    let content = Array(frame.payload[32...])
                    try callback { try store(digest, content) }
                    missing.remove(digest)
                    counters.sent += 1
                    counters.bytes += content.count
                case .offersDone:
                    struct Summary: Codable { var offeredBytes: Int }
                    counters.offeredBytes = try frame.decode(Summary.self).offeredBytes
                    guard missing.isEmpty else {
                        throw ChannelError(.protocolViolation, "\(job.session.peerDescription) finished its offers without sending \(missing.count) chunks this side asked for")
                    }
                    try job.send(.chunksReceived, json: counters)
                    return counters
                default:
                    throw ChannelError(.protocolViolation, "\(job.session.peerDescription) sent a \(frame.type) frame in a chunk exchange on job \(job.id)")
                }
            }
        } catch let error as ChannelError {
            if !error.remote && error.code != .cancelled && job.session.isOpen { job.fail(error) }
            throw error
        }
    }

    /// Runs a caller's callback, turning its failure into a ChannelError the sender can read.
    private func callback<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as ChannelError {
            throw error
        } catch {
            throw ChannelError(.failed, "the receiving side of job \(job.id) failed to check or store a chunk", cause: error)
        }
    }
}
