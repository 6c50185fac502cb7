import Foundation

/// Reads chunks of an online point straight from the bucket, one GET per chunk, for a
/// `RecoveryPointReader` (whose worker threads each hold one source, so reads run in
/// parallel and only the chunks a recovery touches are fetched).
final class OnlineChunkSource: ChunkSource {
    let tier: TierProviderHandle
    let sealer: OnlineSealer
    let counter: OnlineReadCounter

    init(tier: TierProviderHandle, key: TierKey, counter: OnlineReadCounter) throws {
        self.tier = tier
        sealer = try OnlineSealer(key: key)
        self.counter = counter
    }

    func read(_ digest: ChunkDigest, into destination: UnsafeMutableRawBufferPointer) throws {
        let key = OnlineLayout.chunk(digest)
        let sealed: Data
        do {
            sealed = try tier.getObject(key)
        } catch let error as HostError where error.code == .notFound {
            throw HostError(.corrupt, "online chunk \(digest.hex) is missing from the bucket (\(key))")
        }
        counter.add(sealed.count)
        try sealed.withUnsafeBytes { try sealer.openChunk($0, name: digest, key: key, into: destination) }
    }
}

/// Bytes and objects fetched from the bucket by a recovery, across reader threads.
public final class OnlineReadCounter: @unchecked Sendable {
    private let lock = NSLock()
    public private(set) var objects = 0
    public private(set) var bytes: UInt64 = 0

    func add(_ count: Int) {
        lock.lock()
        objects += 1
        bytes += UInt64(count)
        lock.unlock()
    }
}
