import Foundation
import PluginAPI

/// Uploads one recovery point to an online bucket (layout: `OnlineLayout`), sending only the
/// chunks the bucket does not already hold: a sync after 1% of a disk changed sends about 1%
/// of its chunks, plus the point's index and manifest.
///
/// Which chunks the bucket holds is the catalog's `online_chunks` table, written as each
/// upload succeeds, so a sync that fails half-way (the server died) resends only what is
/// missing when it is retried. Chunks are read from the disk store (never from the source),
/// checked, then sealed and uploaded by `parallel` worker threads. The manifest goes last: a
/// point is online only once everything it needs is.
public final class OnlineUploader {
    struct Options {
        var lock: ObjectLock.Mode?
        var lockWindowDays = 30
        var expires: Date
        var throttle: Throttle?
        var parallel = 4
    }

    public struct Report: Codable, Sendable {
        public var chunksTotal = 0
        public var chunksUploaded = 0
        public var chunksAlreadyOnline = 0
        public var chunkBytesSent: UInt64 = 0
        public var indexBytes: UInt64 = 0
        public var manifestBytes: UInt64 = 0
        public var bytesSent: UInt64 = 0
        public var locksExtended = 0
        public var durationMs = 0
    }

    let store: ChunkStore
    let catalog: Catalog
    let tier: TierProviderHandle
    let key: TierKey
    var onProgress: ((UInt64, UInt64) -> Void)?

    init(store: ChunkStore, catalog: Catalog, tier: TierProviderHandle, key: TierKey) {
        self.store = store
        self.catalog = catalog
        self.tier = tier
        self.key = key
    }

    func upload(point: RecoveryPointRecord, source: DataSourceRecord, options: Options) throws -> (OnlineManifest, Report) {
        let started = Date()
        let index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
        var report = Report()
        let now = Date()
        let window = Double(options.lockWindowDays) * 86_400
        func lock(until: Date) -> ObjectLock? { options.lock.map { ObjectLock(retainUntil: until, lockMode: $0) } }

        // Which chunks are already online (and whose locks need extending); the rest upload.
        var names: [ChunkDigest: ChunkDigest] = [:]
        var missing: [(ChunkDigest, Int)] = []
        var seen = Set<ChunkDigest>()
        for stream in index.streams {
            for entry in stream.entries where entry.flag == .data && seen.insert(entry.digest).inserted {
                report.chunksTotal += 1
                guard var known = try catalog.onlineChunk(digest: entry.digest.hex), let name = ChunkDigest(hex: known.name) else {
                    missing.append((entry.digest, Int(entry.length)))
                    continue
                }
                names[entry.digest] = name
                report.chunksAlreadyOnline += 1
                if let lock = lock(until: now.addingTimeInterval(window)), (known.retainUntil ?? .distantPast) < now.addingTimeInterval(window / 2) {
                    try tier.retainObject(OnlineLayout.chunk(name), versionId: known.versionId, lock: lock)
                    known.retainUntil = lock.retainUntil
                    try catalog.recordOnlineChunk(known)
                    report.locksExtended += 1
                }
            }
        }

        // Upload the missing chunks with a bounded pool; record each as it lands.
        let total = missing.reduce(UInt64(0)) { $0 + UInt64($1.1) }
        let condition = NSCondition()
        var next = 0
        var finished: [(ChunkDigest, OnlineChunkRecord, Int)] = []
        var failure: Error?
        let workers = max(1, min(options.parallel, missing.count))
        let chunkLock = lock(until: now.addingTimeInterval(window))
        let join = ThreadGroup.run(missing.isEmpty ? 0 : workers, name: "dpm-upload") { [store, tier, key] _ in
            do {
                let codec = try store.makeCodec()
                let sealer = try OnlineSealer(key: key)
                var plain = [UInt8]()
                while true {
                    condition.lock()
                    guard failure == nil, next < missing.count else { condition.unlock(); return }
                    let (digest, length) = missing[next]
                    next += 1
                    condition.unlock()
                    if plain.count < length { plain = [UInt8](repeating: 0, count: length) }
                    let (name, sealed) = try plain.withUnsafeMutableBytes { raw -> (ChunkDigest, [UInt8]) in
                        let chunk = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                        try codec.read(digest, into: chunk)
                        let name = sealer.name(UnsafeRawBufferPointer(chunk))
                        return (name, try sealer.sealChunk(UnsafeRawBufferPointer(chunk), key: OnlineLayout.chunk(name)))
                    }
                    options.throttle?.wait(for: sealed.count)
                    let reply = try sealed.withUnsafeBytes { try tier.putObject(OnlineLayout.chunk(name), $0, lock: chunkLock) }
                    let record = OnlineChunkRecord(name: name.hex, digest: digest.hex, bytes: UInt64(sealed.count), versionId: reply.versionId,
                                                   retainUntil: chunkLock?.retainUntil, uploaded: Date())
                    condition.lock()
                    finished.append((digest, record, length))
                    condition.broadcast()
                    condition.unlock()
                }
            } catch {
                condition.lock()
                if failure == nil { failure = error }
                condition.broadcast()
                condition.unlock()
            }
        }
        var recorded = 0
        var done: UInt64 = 0
        var recordError: Error?
        func record(_ batch: [(ChunkDigest, OnlineChunkRecord, Int)]) {
            for (digest, chunk, length) in batch {
                do { try catalog.recordOnlineChunk(chunk) } catch { recordError = recordError ?? error }
                names[digest] = ChunkDigest(hex: chunk.name)
                report.chunksUploaded += 1
                report.chunkBytesSent += chunk.bytes
                done += UInt64(length)
                recorded += 1
                CrashPoint.hit("online.chunk-uploaded")
            }
            onProgress?(done, total)
        }
        while recorded < missing.count {
            condition.lock()
            while finished.isEmpty && failure == nil { condition.wait() }
            let batch = finished
            finished = []
            let failed = failure != nil
            condition.unlock()
            record(batch)
            if failed { break }
        }
        join()
        // Uploads that landed after another failed still count: a retry need not resend them.
        record(finished)
        if let failure { throw failure }
        if let recordError { throw recordError }

        // The index, naming chunks by their online names, then the manifest.
        var online = index
        for stream in online.streams.indices {
            for entry in online.streams[stream].entries.indices where online.streams[stream].entries[entry].flag == .data {
                let digest = online.streams[stream].entries[entry].digest
                guard let name = names[digest] else { throw HostError(.internalError, "chunk \(digest.hex) was neither online nor uploaded") }
                online.streams[stream].entries[entry].digest = name
            }
        }
        let sealer = try OnlineSealer(key: key)
        let indexKey = OnlineLayout.index(datasource: source.id, rp: point.id)
        let sealedIndex = try online.encode().withUnsafeBytes { try sealer.seal($0, key: indexKey) }
        try sealedIndex.withUnsafeBytes { _ = try tier.putObject(indexKey, $0, lock: lock(until: options.expires)) }
        report.indexBytes = UInt64(sealedIndex.count)
        let manifest = OnlineManifest(datasource: source, point: point, created: now, expires: options.expires, chunks: report.chunksTotal,
                                      plainBytes: index.streams.reduce(0) { $0 + $1.size }, indexKey: indexKey)
        let manifestKey = OnlineLayout.manifest(datasource: source.id, rp: point.id)
        let sealedManifest = try JSONCoding.encode(manifest).withUnsafeBytes { try sealer.seal($0, key: manifestKey) }
        CrashPoint.hit("online.before-manifest")
        try sealedManifest.withUnsafeBytes { _ = try tier.putObject(manifestKey, $0, lock: lock(until: options.expires)) }
        report.manifestBytes = UInt64(sealedManifest.count)
        report.bytesSent = report.chunkBytesSent + report.indexBytes + report.manifestBytes
        report.durationMs = Int(Date().timeIntervalSince(started) * 1000)
        return (manifest, report)
    }
}
