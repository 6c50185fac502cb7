import Foundation
import Glibc

/// Removes chunks no recovery point references, by mark and sweep with a grace period.
///
/// Protocol (safe against concurrent backups, which hold `locks/store.lock` shared for
/// their whole run):
/// 1. Mark, without the store lock: every digest of every recovery point in the catalog.
/// 2. Take the store lock exclusively, waiting for running backups to finish. No backup is
///    then between writing its chunks and recording its point.
/// 3. Mark again the points recorded since step 1.
/// 4. Sweep: delete chunk files that are unmarked and older than the grace period, index
///    files without a catalog row (crash leftovers) and temporary files, both also older
///    than the grace period.
/// Only one gc runs at a time (`locks/gc.lock`).
///
/// Staged long-term copies (`store/staging/DS/NAME.dpmidx`, written by a recovery from a
/// tier while it holds the store lock shared) are roots too while younger than the grace
/// period; older ones are removed, and a later recovery stages the copy again.
///
/// The mark set holds only the first 8 bytes of each digest (a sorted array), so it costs
/// 8 bytes a chunk: about 160 MB for the 20 million chunks of 80 TB. Two digests sharing a
/// prefix can only make gc keep an unreferenced chunk a little longer, never remove a
/// referenced one.
public final class GarbageCollector {
    public struct Result: Codable, Sendable {
        public var chunksMarked = 0
        public var chunksRemoved = 0
        public var bytesFreed: UInt64 = 0
        public var chunksKeptByGrace = 0
        public var orphanIndexesRemoved = 0
        public var temporaryFilesRemoved = 0
        public var stagedIndexesRemoved = 0
    }

    let dataDirectory: DataDirectory
    let store: ChunkStore
    let catalog: Catalog

    public init(dataDirectory: DataDirectory, store: ChunkStore, catalog: Catalog) {
        self.dataDirectory = dataDirectory
        self.store = store
        self.catalog = catalog
    }

    /// - Parameter grace: files younger than this are never removed.
    /// - Parameter onLocked: called once the store lock is held (tests use it to interleave).
    public func collect(grace: TimeInterval, now: Date = Date(), onLocked: (() -> Void)? = nil) throws -> Result {
        try dataDirectory.create()
        guard let gcLock = try FileLock.acquire(dataDirectory.locksDirectory + "/gc.lock", .exclusive, wait: false) else {
            throw HostError(.busy, "another gc is running on \(dataDirectory.path); wait for it to finish")
        }
        defer { withExtendedLifetime(gcLock) {} }
        let cutoff = now.addingTimeInterval(-grace)
        var marked = MarkSet()
        var seen = Set<String>()
        try mark(into: &marked, seen: &seen)
        markStaged(into: &marked, seen: &seen, cutoff: cutoff)

        guard let storeLock = try FileLock.acquire(dataDirectory.locksDirectory + "/store.lock", .exclusive, wait: true) else {
            throw HostError(.busy, "the store is locked")
        }
        defer { withExtendedLifetime(storeLock) {} }
        onLocked?()
        try mark(into: &marked, seen: &seen)
        markStaged(into: &marked, seen: &seen, cutoff: cutoff)

        var result = Result()
        marked.seal()
        result.chunksMarked = marked.count
        let referencedIndexes = Set(try catalog.allRecoveryPoints().map { store.directory + "/" + $0.indexPath })
        // Index files (and their temporary files) that no catalog row names are crash leftovers.
        for path in files(under: store.pointsDirectory) where !referencedIndexes.contains(path) && modified(path) < cutoff {
            if unlink(path) == 0 { result.orphanIndexesRemoved += 1 }
        }
        for path in files(under: store.directory + "/staging") where !seen.contains(path) {
            if unlink(path) == 0 { result.stagedIndexesRemoved += 1 }
        }
        for path in files(under: store.temporaryDirectory) where modified(path) < cutoff {
            if unlink(path) == 0 { result.temporaryFilesRemoved += 1 }
        }
        for path in files(under: store.chunksDirectory) {
            guard let digest = ChunkDigest(hex: (path as NSString).lastPathComponent) else { continue }
            guard !marked.contains(digest) else { continue }
            var status = stat()
            guard stat(path, &status) == 0 else { continue }
            if Date(timeIntervalSince1970: TimeInterval(status.st_mtim.tv_sec)) >= cutoff {
                result.chunksKeptByGrace += 1
                continue
            }
            if unlink(path) == 0 {
                result.chunksRemoved += 1
                result.bytesFreed += UInt64(status.st_size)
            }
        }
        return result
    }

    /// Adds the digests of every catalog point not yet in `seen`.
    private func mark(into marked: inout MarkSet, seen: inout Set<String>) throws {
        for point in try catalog.allRecoveryPoints() where !seen.contains(point.id) {
            let index: RecoveryPointIndex
            do {
                index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
            } catch {
                throw HostError(.corrupt, "gc cannot tell which chunks recovery point \(point.id) uses, so it removes nothing: \(error); "
                    + "delete that point with `dpm rp delete \(point.datasourceId) --rp \(point.id)` if it cannot be repaired")
            }
            for stream in index.streams { for entry in stream.entries where entry.flag == .data { marked.insert(entry.digest) } }
            seen.insert(point.id)
        }
    }

    /// Adds the digests of staged long-term copies younger than `cutoff`; older or damaged
    /// ones stay unmarked (and unseen), so the sweep removes them.
    private func markStaged(into marked: inout MarkSet, seen: inout Set<String>, cutoff: Date) {
        for path in files(under: store.directory + "/staging") where !seen.contains(path) && path.hasSuffix(".dpmidx") {
            guard modified(path) >= cutoff, let index = try? RecoveryPointIndex.load(path) else { continue }
            for stream in index.streams { for entry in stream.entries where entry.flag == .data { marked.insert(entry.digest) } }
            seen.insert(path)
        }
    }

    func files(under directory: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
        var paths: [String] = []
        while let name = enumerator.nextObject() as? String {
            let path = directory + "/" + name
            if !FileSystem.isDirectory(path) { paths.append(path) }
        }
        return paths
    }

    func modified(_ path: String) -> Date {
        var status = stat()
        guard stat(path, &status) == 0 else { return .distantFuture }
        return Date(timeIntervalSince1970: TimeInterval(status.st_mtim.tv_sec))
    }
}

/// The digests gc keeps, by their first 8 bytes: an array, sorted once marking is done.
struct MarkSet {
    private var prefixes: [UInt64] = []
    private var sealed = false

    mutating func insert(_ digest: ChunkDigest) {
        prefixes.append(digest.bytes.0)
        sealed = false
    }

    /// Sorts and removes duplicates; call before `contains`.
    mutating func seal() {
        prefixes.sort()
        var unique: [UInt64] = []
        unique.reserveCapacity(prefixes.count)
        for prefix in prefixes where unique.last != prefix { unique.append(prefix) }
        prefixes = unique
        sealed = true
    }

    var count: Int { prefixes.count }

    func contains(_ digest: ChunkDigest) -> Bool {
        precondition(sealed, "MarkSet.contains before seal()")
        let key = digest.bytes.0
        var low = 0, high = prefixes.count
        while low < high {
            let middle = (low + high) / 2
            if prefixes[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low < prefixes.count && prefixes[low] == key
    }
}
