import Digests
import Foundation

/// The chunk negotiation on one job, and the payloads of its frames.
///
/// ```
/// sender                                   receiver
/// offer   (batch 0: digests)        ──▶
/// offer   (batch 1: digests)        ──▶    (answers each offer as it reads it)
///                                   ◀──    wanted (batch 0: bitmap of the digests it lacks)
/// chunk   (digest ‖ content) …      ──▶    re-hashes each chunk, refuses a mismatch
///                                   ◀──    wanted (batch 1)
/// chunk …                           ──▶
/// offers-done (JSON summary)        ──▶
///                                   ◀──    chunks-received (JSON counters)
/// ```
/// The sender keeps at most `window` offers unanswered, so it needs no round trip per batch
/// and bounded memory. The receiver never asks twice for a digest in one exchange.
///
/// ## Payloads (integers unsigned big-endian)
/// - `offer`:  u32 batch number (0, 1, … in order), then 1…4096 digests of 32 bytes.
/// - `wanted`: u32 batch number, u32 digest count n of that batch, then ⌈n/8⌉ bytes of bitmap;
///   bit i (byte i/8, bit i%8 counting from the least significant) is set when the receiver
///   lacks digest i and the sender must send it.
/// - `chunk`:  the 32-byte digest (SHA-256 of the content), then the content (1 byte or more).
/// - `offers-done`: JSON {"batches", "offered", "offered_bytes", "sent", "bytes"}.
/// - `chunks-received`: JSON `ChunkTransferCounters` as the receiver counted them.
enum ChunkFrames {
    static let maxDigestsPerOffer = 4096

    static func offer(batch: UInt32, digests: [ChunkDigest]) -> [UInt8] {
        var payload = BigEndian.bytes(batch)
        payload.reserveCapacity(4 + 32 * digests.count)
        for digest in digests { payload += digest.raw }
        return payload
    }

    static func parseOffer(_ payload: [UInt8]) throws -> (batch: UInt32, digests: [ChunkDigest]) {
        let count = (payload.count - 4) / 32
        guard payload.count >= 36, (payload.count - 4) % 32 == 0, count <= maxDigestsPerOffer else {
            throw ChannelError(.protocolViolation, "an offer frame of \(payload.count) bytes is not a batch number and 1 to \(maxDigestsPerOffer) digests of 32 bytes")
        }
        let digests = payload.withUnsafeBytes { raw in (0..<count).map { ChunkDigest(raw, at: 4 + 32 * $0) } }
        return (BigEndian.uint32(payload, at: 0), digests)
    }

    static func wanted(batch: UInt32, lacking: [Bool]) -> [UInt8] {
        var bitmap = [UInt8](repeating: 0, count: (lacking.count + 7) / 8)
        for (index, lacks) in lacking.enumerated() where lacks { bitmap[index / 8] |= 1 << (index % 8) }
        return BigEndian.bytes(batch) + BigEndian.bytes(UInt32(lacking.count)) + bitmap
    }

    static func parseWanted(_ payload: [UInt8]) throws -> (batch: UInt32, lacking: [Bool]) {
        guard payload.count >= 8 else { throw ChannelError(.protocolViolation, "a wanted frame of \(payload.count) bytes is shorter than its 8-byte header") }
        let count = Int(BigEndian.uint32(payload, at: 4))
        guard count <= maxDigestsPerOffer, payload.count == 8 + (count + 7) / 8 else {
            throw ChannelError(.protocolViolation, "a wanted frame for \(count) digests must hold \((count + 7) / 8) bitmap bytes, not \(payload.count - 8)")
        }
        let lacking = (0..<count).map { payload[8 + $0 / 8] & (1 << ($0 % 8)) != 0 }
        return (BigEndian.uint32(payload, at: 0), lacking)
    }

    static func parseChunk(_ payload: [UInt8]) throws -> ChunkDigest {
        guard payload.count > 32 else { throw ChannelError(.protocolViolation, "a chunk frame of \(payload.count) bytes holds no content after its digest") }
        return payload.withUnsafeBytes { ChunkDigest($0) }
    }
}

/// What one chunk exchange moved, as either side counted it.
public struct ChunkTransferCounters: Codable, Sendable, Equatable {
    /// Digests offered (duplicates included).
    public var offered = 0
    /// Content bytes of the offered chunks, as the sender declared them.
    public var offeredBytes = 0
    /// Digests the receiver asked for.
    public var needed = 0
    /// Chunks that crossed the network.
    public var sent = 0
    /// Content bytes of the chunks that crossed (digests and headers not included).
    public var bytes = 0
    /// Offer batches.
    public var batches = 0

    public init() {}
}
