import Foundation
import PluginAPI

/// Reads chunks from a snapshot on one thread and hashes, deduplicates, compresses and
/// writes them on worker threads, so reading, hashing, compressing and writing overlap.
///
/// Memory is bounded by the buffer pool: `workers + 2` chunk buffers, whatever the size
/// of the data source.
final class BackupPipeline {
    struct Job {
        let stream: Int
        let index: Int
        let buffer: UnsafeMutableRawBufferPointer
        let length: Int
    }

    let store: ChunkStore
    let batch: ChunkCommitBatch
    let counters: BackupCounters
    let workerCount: Int
    private let queue: BoundedQueue<Job>
    private let freeBuffers: BoundedQueue<UnsafeMutableRawBufferPointer>
    private var allBuffers: [UnsafeMutableRawBufferPointer] = []
    private let lock = NSLock()
    private var entries: [[RecoveryPointIndex.Entry?]]
    private var failure: Error?
    private var join: (() -> Void)?
    var onChunkDone: ((Int) -> Void)?
    /// Take the BlobChecksum of every chunk written, for the initial replica's check.
    var checksumsNewChunks = false

    init(store: ChunkStore, batch: ChunkCommitBatch, counters: BackupCounters, workers: Int, streams: Int) {
        self.store = store
        self.batch = batch
        self.counters = counters
        workerCount = max(1, workers)
        queue = BoundedQueue(capacity: workerCount)
        freeBuffers = BoundedQueue(capacity: workerCount + 2)
        entries = Array(repeating: [], count: streams)
        for _ in 0..<(workerCount + 2) {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: store.chunkSize, alignment: 4096)
            allBuffers.append(buffer)
            freeBuffers.push(buffer)
        }
    }

    deinit {
        for buffer in allBuffers { buffer.deallocate() }
    }

    /// Starts the workers; each gets its own codec.
    func start() throws {
        let codecs = try (0..<workerCount).map { _ in try store.makeCodec() }
        join = ThreadGroup.run(workerCount, name: "dpm-chunk") { [self] index in work(codec: codecs[index]) }
    }

    /// Reserves `count` entries for a stream before its jobs are submitted.
    func reserve(stream: Int, count: Int) {
        lock.lock()
        entries[stream] = Array(repeating: nil, count: count)
        lock.unlock()
    }

    /// Appends one entry slot to a stream (content-defined chunking) and returns its index.
    func appendSlot(stream: Int) -> Int {
        lock.lock(); defer { lock.unlock() }
        entries[stream].append(nil)
        return entries[stream].count - 1
    }

    func set(stream: Int, index: Int, _ entry: RecoveryPointIndex.Entry) {
        lock.lock()
        entries[stream][index] = entry
        lock.unlock()
    }

    /// A free chunk buffer, waiting for one; nil after a failure.
    func takeBuffer() throws -> UnsafeMutableRawBufferPointer {
        if let error = currentFailure { throw error }
        guard let buffer = freeBuffers.pop() else { throw currentFailure ?? HostError(.cancelled, "the backup was stopped") }
        return buffer
    }

    func giveBack(_ buffer: UnsafeMutableRawBufferPointer) { freeBuffers.push(buffer) }

    func submit(_ job: Job) throws {
        if let error = currentFailure {
            giveBack(job.buffer)
            throw error
        }
        queue.push(job)
    }

    var currentFailure: Error? {
        lock.lock(); defer { lock.unlock() }
        return failure
    }

    func fail(_ error: Error) {
        lock.lock()
        if failure == nil { failure = error }
        lock.unlock()
        queue.close()
        freeBuffers.close()
    }

    /// Waits for the workers and returns every stream's entries, or the first failure.
    func finish() throws -> [[RecoveryPointIndex.Entry]] {
        queue.close()
        join?()
        join = nil
        if let failure = currentFailure { throw failure }
        return try entries.enumerated().map { stream, slots in
            try slots.enumerated().map { index, entry in
                guard let entry else { throw HostError(.internalError, "stream \(stream) chunk \(index) was never processed") }
                return entry
            }
        }
    }

    private func work(codec: ChunkCodec) {
        while let job = queue.pop() {
            do {
                let plain = UnsafeRawBufferPointer(rebasing: job.buffer[0..<job.length])
                let entry: RecoveryPointIndex.Entry
                if BackupPipeline.isZero(plain) {
                    counters.zeroRead()
                    entry = .zero(job.length)
                } else {
                    let digest = codec.digest(plain)
                    if batch.claim(digest) {
                        let written = try codec.writeTemporary(plain, digest: digest, checksum: checksumsNewChunks)
                        CrashPoint.hit("chunk.temp-written")
                        counters.stored(plain: job.length, stored: written.blob.bytes)
                        try batch.add(temporary: written.path, digest: digest, blob: written.blob)
                    } else {
                        counters.deduplicated()
                    }
                    entry = RecoveryPointIndex.Entry(digest: digest, length: UInt32(job.length), flag: .data)
                }
                set(stream: job.stream, index: job.index, entry)
                giveBack(job.buffer)
                onChunkDone?(job.length)
            } catch {
                giveBack(job.buffer)
                fail(error)
            }
        }
    }

    /// Whether every byte is zero (compares the buffer with itself shifted by 16 bytes).
    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        let head = min(16, bytes.count)
        for index in 0..<head where bytes[index] != 0 { return false }
        guard bytes.count > 16 else { return true }
        return memcmp(base, base + 16, bytes.count - 16) == 0
    }
}
