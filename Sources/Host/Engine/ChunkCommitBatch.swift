import Foundation
import Glibc

/// The chunks one backup has written but not yet published under their names.
///
/// Publishing follows the store's crash-safety order: make the temporary files durable
/// (syncfs), rename them to their final names, make the renames durable (syncfs). Digests
/// stay claimed for the whole backup, so two workers never write the same chunk twice.
/// Thread-safe.
final class ChunkCommitBatch {
    private let store: ChunkStore
    private let lock = NSLock()
    private var claimed = Set<ChunkDigest>()
    private var pending: [(temporary: String, digest: ChunkDigest)] = []
    private var pendingBytes = 0
    private var checksummed: [ChunkDigest: WrittenBlob] = [:]
    /// Publish automatically once this many bytes wait, bounding what a crash can orphan.
    let threshold: Int

    init(store: ChunkStore, threshold: Int = 1 << 30) {
        self.store = store
        self.threshold = threshold
    }

    /// Claims a digest for writing. False when it is stored already or claimed by this backup.
    func claim(_ digest: ChunkDigest) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !claimed.contains(digest) else { return false }
        guard !store.contains(digest) else {
            claimed.insert(digest)
            return false
        }
        claimed.insert(digest)
        return true
    }

    /// Records a written temporary chunk; publishes the batch when it grew past the threshold.
    /// A blob with a checksum is kept in `written` for the initial replica's check.
    func add(temporary: String, digest: ChunkDigest, blob: WrittenBlob) throws {
        lock.lock()
        pending.append((temporary, digest))
        pendingBytes += blob.bytes
        if blob.checksum != nil { checksummed[digest] = blob }
        let full = pendingBytes >= threshold
        lock.unlock()
        if full { try publish() }
    }

    /// The chunks added with a checksum, by digest: about 100 bytes each (25,000 for a
    /// 100 GB disk), for one backup.
    var written: [ChunkDigest: WrittenBlob] {
        lock.lock(); defer { lock.unlock() }
        return checksummed
    }

    /// Makes every pending chunk durable under its name.
    func publish() throws {
        lock.lock()
        let batch = pending
        pending = []
        pendingBytes = 0
        lock.unlock()
        guard !batch.isEmpty else { return }
        try store.syncFileSystem()
        CrashPoint.hit("chunks.synced")
        var directories = Set<String>()
        for item in batch {
            let final = store.chunkPath(item.digest)
            let directory = (final as NSString).deletingLastPathComponent
            if !directories.contains(directory) {
                try FileSystem.makeDirectory(directory)
                directories.insert(directory)
            }
            guard rename(item.temporary, final) == 0 else { throw HostError.posix("cannot publish chunk", path: final) }
            CrashPoint.hit("chunk.renamed")
        }
        try store.syncFileSystem()
        CrashPoint.hit("chunks.published")
    }

    /// Removes temporary files of a failed backup (best effort; gc removes any left over).
    func discard() {
        lock.lock()
        let batch = pending
        pending = []
        lock.unlock()
        for item in batch { unlink(item.temporary) }
    }
}
