import Foundation
import PluginAPI

/// Random-access reads of one recovery point, touching only the chunks a read needs.
///
/// Decoded chunks are kept in a small cache. When reads walk forward through a stream, the
/// reader decodes the next chunks on worker threads ahead of need (read-ahead), so a
/// sequential restore uses every core; scattered reads (browsing a file system) never
/// trigger read-ahead, so they read nothing they do not need. Thread-safe.
public final class RecoveryPointReader: RecoveryPointAccess, @unchecked Sendable {
    public let record: RecoveryPointRecord
    public let index: RecoveryPointIndex

    private struct Key: Hashable { let stream: Int; let entry: Int }
    private final class Slot {
        var buffer: UnsafeMutableRawBufferPointer?
        var error: Error?
        var ready = false
        var lastUse = 0
        /// Readers waiting on or copying from this slot; a pinned slot is never evicted.
        var pins = 0
    }

    private let condition = NSCondition()
    private var cache: [Key: Slot] = [:]
    private var useCounter = 0
    private var lastEntry: Key?
    private let readAhead: Int
    private let readAheadAfter: Int
    /// Chunks read in order, one after the other, up to now.
    private var streak = 0
    private let capacity: Int
    private var requests: [Key] = []
    private var stopped = false
    private var sources: [ChunkSource] = []
    private var joinWorkers: (() -> Void)?
    /// Paces the bytes handed to readers (a recovery's bandwidth limit).
    public var throttle: Throttle?
    /// For a point read from an online tier: what was fetched from it.
    public var tierReads: OnlineReadCounter?
    /// Distinct chunk decodes so far (read-ahead included), for reporting.
    public private(set) var chunksLoaded = 0
    public private(set) var bytesLoaded: UInt64 = 0

    /// A point of the disk store.
    public convenience init(store: ChunkStore, record: RecoveryPointRecord,
                            workers: Int = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))) throws {
        let index = try RecoveryPointIndex.load(store.directory + "/" + record.indexPath)
        try self.init(index: index, record: record, sources: (0..<max(1, workers)).map { _ in try store.makeCodec() })
    }

    /// A point whose chunks come from elsewhere (an online tier): one source per worker
    /// thread, each used by one thread only.
    /// - Parameter readAheadAfter: how many chunks in a row must be read in order before
    ///   read-ahead starts (more for sources where a needless read costs a request).
    public init(index: RecoveryPointIndex, record: RecoveryPointRecord, sources: [ChunkSource], readAheadAfter: Int = 1) throws {
        guard !sources.isEmpty else { throw HostError(.internalError, "a recovery point reader needs a chunk source") }
        self.record = record
        self.index = index
        readAhead = sources.count > 1 ? 2 * sources.count : 0
        capacity = readAhead + 4
        self.sources = sources
        self.readAheadAfter = max(1, readAheadAfter)
        joinWorkers = ThreadGroup.run(sources.count, name: "dpm-read") { [unowned self] worker in self.work(self.sources[worker]) }
    }

    deinit { close() }

    /// Stops the worker threads; further reads fail.
    public func close() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
        joinWorkers?()
        joinWorkers = nil
        for slot in cache.values { slot.buffer?.deallocate() }
        cache.removeAll()
    }

    public func manifestJSON() throws -> Data {
        let manifest = RecoveryPointManifest(
            datasource: index.manifest.datasource, rp: index.manifest.rp, time: index.manifest.time, kind: index.manifest.kind,
            consistency: index.manifest.consistency, metadata: index.manifest.metadata,
            streams: index.manifest.streams.enumerated().map { .init(index: $0.offset, name: $0.element.name, kind: $0.element.kind, size: $0.element.size) })
        return try JSONCoding.encode(manifest)
    }

    public func dataExtents(stream: Int) throws -> [Extent] {
        let layout = try streamLayout(stream)
        var extents: [Extent] = []
        for (number, entry) in layout.entries.enumerated() where entry.flag == .data {
            let start = layout.start(ofEntry: number)
            if let last = extents.last, last.end == start {
                extents[extents.count - 1].length += UInt64(entry.length)
            } else {
                extents.append(Extent(offset: start, length: UInt64(entry.length)))
            }
        }
        return extents
    }

    func streamLayout(_ stream: Int) throws -> RecoveryPointIndex.Stream {
        guard stream >= 0, stream < index.streams.count else {
            throw HostError(.invalid, "recovery point \(record.id) has no stream \(stream) (it has \(index.streams.count))")
        }
        return index.streams[stream]
    }

    public func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let layout = try streamLayout(stream)
        guard offset <= layout.size, UInt64(buffer.count) <= layout.size - offset else {
            throw HostError(.invalid, "read of \(buffer.count) bytes at \(offset) passes the end of stream \(stream) (\(layout.size) bytes)")
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            guard let number = layout.entryIndex(containing: position) else { break }
            let entry = layout.entries[number]
            let within = Int(position - layout.start(ofEntry: number))
            let count = min(buffer.count - done, Int(entry.length) - within)
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
            if entry.flag == .data {
                try copy(Key(stream: stream, entry: number), layout: layout, from: within, into: target)
            } else {
                target.initializeMemory(as: UInt8.self, repeating: 0)
            }
            done += count
        }
        throttle?.wait(for: buffer.count)
    }

    /// Copies part of a decoded chunk, decoding it (and scheduling read-ahead) if needed.
    private func copy(_ key: Key, layout: RecoveryPointIndex.Stream, from within: Int, into target: UnsafeMutableRawBufferPointer) throws {
        condition.lock()
        defer { condition.unlock() }
        let sequential = lastEntry.map { $0.stream == key.stream && ($0.entry == key.entry || $0.entry + 1 == key.entry) } ?? (key.entry == 0)
        if lastEntry != key { streak = sequential ? streak + 1 : 0 }
        lastEntry = key
        request(key)
        // Pin the slot before scheduling read-ahead, whose requests may evict other slots.
        guard let slot = cache[key] else { throw HostError(.internalError, "chunk cache lost an entry") }
        slot.pins += 1
        defer { slot.pins -= 1 }
        useCounter += 1
        slot.lastUse = useCounter
        if sequential && readAhead > 0 && streak >= readAheadAfter {
            var ahead = key.entry + 1
            var scheduled = 0
            while scheduled < readAhead && ahead < layout.entries.count {
                if layout.entries[ahead].flag == .data {
                    request(Key(stream: key.stream, entry: ahead))
                    scheduled += 1
                }
                ahead += 1
            }
        }
        while !slot.ready && !stopped { condition.wait() }
        if let error = slot.error {
            cache[key] = nil
            throw error
        }
        guard let buffer = slot.buffer else { throw HostError(.cancelled, "the reader was closed") }
        useCounter += 1
        slot.lastUse = useCounter
        target.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[within..<within + target.count]))
    }

    /// Queues a decode unless cached or queued. Called with the lock held.
    private func request(_ key: Key) {
        guard cache[key] == nil else { return }
        evictIfFull()
        let slot = Slot()
        useCounter += 1
        slot.lastUse = useCounter
        cache[key] = slot
        requests.append(key)
        condition.broadcast()
    }

    private func evictIfFull() {
        while cache.count >= capacity {
            guard let victim = cache.filter({ $0.value.ready && $0.value.pins == 0 }).min(by: { $0.value.lastUse < $1.value.lastUse }) else { return }
            victim.value.buffer?.deallocate()
            cache[victim.key] = nil
        }
    }

    private func work(_ source: ChunkSource) {
        condition.lock()
        while true {
            while requests.isEmpty && !stopped { condition.wait() }
            if stopped { break }
            let key = requests.removeFirst()
            guard let slot = cache[key] else { continue }
            let entry = index.streams[key.stream].entries[key.entry]
            condition.unlock()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(entry.length), alignment: 64)
            var failure: Error?
            do {
                try source.read(entry.digest, into: buffer)
            } catch {
                failure = error
            }
            condition.lock()
            chunksLoaded += 1
            bytesLoaded += UInt64(entry.length)
            if let failure {
                buffer.deallocate()
                slot.error = HostError(.corrupt, "recovery point \(record.id): \(failure)")
            } else {
                slot.buffer = buffer
            }
            slot.ready = true
            condition.broadcast()
        }
        condition.unlock()
    }
}
