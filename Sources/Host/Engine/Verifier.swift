import Foundation

/// Re-reads the chunks of recovery points from storage (StorageRead: O_DIRECT, past the page
/// cache), decodes and re-hashes them (or, for blobs the caller just wrote, compares them with
/// the BlobChecksum taken as they were written), and records the outcome in the catalog:
/// damaged points are marked (with the reason), the others `verified`. A chunk that fails its check is moved
/// to `store/quarantine/`, so the next backup that meets the same content writes it afresh
/// instead of deduplicating against the damaged copy. `dpm verify` and the initial replica's
/// check (ReplicaVerification) both run this.
public final class Verifier {
    public struct Damage: Codable, Sendable, Equatable {
        public var rp: String
        public var datasource: String
        public var problem: String
    }

    public struct Result: Codable, Sendable {
        public var pointsChecked = 0
        public var chunksChecked = 0
        /// Of those, the chunks compared with the checksum of their blob as written (the rest
        /// were decoded and re-hashed).
        public var chunksCompared = 0
        /// The plain bytes of the chunks checked.
        public var bytesChecked: UInt64 = 0
        /// How the chunk files were read from storage.
        public var reads = StorageReadCounts()
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

    /// - Parameter written: blobs the caller wrote, with their checksums: those chunks are
    ///   compared with what was written instead of decoded and re-hashed.
    public func verify(points: [RecoveryPointRecord], written: [ChunkDigest: WrittenBlob] = [:]) throws -> Result {
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
        let digests = Array(chunks.keys)
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
                        if let blob = written[digest], blob.checksum != nil {
                            try codecs[worker].compareStored(digest, with: blob)
                        } else {
                            try codecs[worker].read(digest, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), source: .storage)
                        }
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
        result.chunksCompared = digests.filter { written[$0]?.checksum != nil }.count
        result.bytesChecked = total
        for codec in codecs { result.reads.add(codec.storageReads) }
        for (digest, failure) in failures {
            quarantine(digest)
            for point in chunks[digest]!.points { problems[point, default: []].append(failure) }
        }
        var verified: [String] = []
        for point in points {
            if let list = problems[point.id] {
                let summary = list.count > 3 ? list.prefix(3).joined(separator: "; ") + "; and \(list.count - 3) more" : list.joined(separator: "; ")
                result.damaged.append(Damage(rp: point.id, datasource: point.datasourceId, problem: summary))
            } else if point.status != RecoveryPointStatus.verified {
                verified.append(point.id)
            }
        }
        try catalog.recordVerification(damaged: result.damaged.map { ($0.rp, $0.problem) }, verified: verified)
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
