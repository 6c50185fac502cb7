import Foundation

/// Re-reads and re-hashes the chunks of recovery points, and records the outcome in the
/// catalog: damaged points are marked (with the reason), points that check out again are
/// marked healthy. A chunk that fails its check is moved to `store/quarantine/`, so the
/// next backup that meets the same content writes it afresh instead of deduplicating
/// against the damaged copy.
public final class Verifier {
    public struct Damage: Codable, Sendable, Equatable {
        public var rp: String
        public var datasource: String
        public var problem: String
    }

    public struct Result: Codable, Sendable {
        public var pointsChecked = 0
        public var chunksChecked = 0
        public var bytesChecked: UInt64 = 0
        public var damaged: [Damage] = []
    }

    let store: ChunkStore
    let catalog: Catalog
    let workers: Int
    public var onProgress: ((UInt64, UInt64) -> Void)?

    public init(store: ChunkStore, catalog: Catalog, workers: Int = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))) {
        self.store = store
        self.catalog = catalog
        self.workers = workers
    }

    /// - Parameter skipping: chunks already checked (read back and re-hashed) by the caller.
    public func verify(points: [RecoveryPointRecord], skipping: Set<ChunkDigest> = []) throws -> Result {
        var result = Result()
        var problems: [String: [String]] = [:]
        var chunks: [ChunkDigest: (length: Int, points: [String])] = [:]
        for point in points {
            result.pointsChecked += 1
            do {
                let index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
                for stream in index.streams {
                    for entry in stream.entries where entry.flag == .data {
                        chunks[entry.digest, default: (Int(entry.length), [])].points.append(point.id)
                    }
                }
            } catch {
                problems[point.id, default: []].append(String(describing: error))
            }
        }
        let digests = chunks.keys.filter { !skipping.contains($0) }
        let total = digests.reduce(UInt64(0)) { $0 + UInt64(chunks[$1]!.length) }
        let lock = NSLock()
        var next = 0
        var done: UInt64 = 0
        var failures: [(ChunkDigest, String)] = []
        let codecs = try (0..<workers).map { _ in try store.makeCodec() }
        let join = ThreadGroup.run(workers, name: "dpm-verify") { worker in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, self.store.chunkSize), alignment: 64)
            defer { buffer.deallocate() }
            while true {
                lock.lock()
                guard next < digests.count else { lock.unlock(); return }
                let digest = digests[next]
                next += 1
                lock.unlock()
                let length = chunks[digest]!.length
                var failure: String?
                if length > buffer.count {
                    failure = "chunk \(digest.hex) is longer (\(length)) than the store's chunk size"
                } else {
                    do {
                        try codecs[worker].read(digest, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]))
                    } catch {
                        failure = String(describing: error)
                    }
                }
                lock.lock()
                if let failure { failures.append((digest, failure)) }
                done += UInt64(length)
                let progress = done
                lock.unlock()
                self.onProgress?(progress, total)
            }
        }
        join()
        result.chunksChecked = digests.count
        result.bytesChecked = total
        for (digest, failure) in failures {
            quarantine(digest)
            for point in chunks[digest]!.points { problems[point, default: []].append(failure) }
        }
        for point in points {
            if let list = problems[point.id] {
                let summary = list.count > 3 ? list.prefix(3).joined(separator: "; ") + "; and \(list.count - 3) more" : list.joined(separator: "; ")
                try catalog.markDamaged(point.id, damage: summary)
                result.damaged.append(Damage(rp: point.id, datasource: point.datasourceId, problem: summary))
            } else if point.status != "ok" {
                try catalog.markHealthy(point.id)
            }
        }
        return result
    }

    /// Moves a damaged chunk aside (keeping it for inspection) so it is no longer deduplicated against.
    func quarantine(_ digest: ChunkDigest) {
        let path = store.chunkPath(digest)
        guard FileSystem.exists(path) else { return }
        let directory = store.directory + "/quarantine"
        try? FileSystem.makeDirectory(directory)
        rename(path, "\(directory)/\(digest.hex)-\(Int(Date().timeIntervalSince1970))")
    }
}
