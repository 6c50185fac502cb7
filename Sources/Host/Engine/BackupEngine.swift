import Foundation
import PluginAPI

/// Runs one backup of one data source: snapshot, read what is needed, store new chunks,
/// write the recovery point's index, record it in the catalog, release the snapshot.
///
/// Order of durable effects (see ChunkStore): chunks, then the snapshot's release (which
/// yields the change-tracking token), then the index, then the catalog row. A failure or a
/// crash before the row leaves no visible recovery point. The initial replica's row is
/// written `unverified`; its check (ReplicaVerification) then makes it `verified` or `damaged`.
public final class BackupEngine {
    public struct Options {
        public var mode: BackupMode
        public var providerOptions: JSONValue?
        /// Check the initial replica (the first backup of a data source) once it is durable:
        /// every chunk re-read from storage, decoded and re-hashed (ReplicaVerification).
        public var verifyInitialReplica = true
        public var workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
        public var onProgress: ((UInt64, UInt64) -> Void)?
        /// Raised to stop the backup; it ends with `cancelled`, keeping the chunks it wrote
        /// (the next backup deduplicates against them, so the work is not lost).
        public var cancellation: CancellationFlag?

        public init(mode: BackupMode, providerOptions: JSONValue? = nil) {
            self.mode = mode
            self.providerOptions = providerOptions
        }
    }

    let dataDirectory: DataDirectory
    let store: ChunkStore
    let catalog: Catalog

    public init(dataDirectory: DataDirectory, store: ChunkStore, catalog: Catalog) {
        self.dataDirectory = dataDirectory
        self.store = store
        self.catalog = catalog
    }

    /// Backs up `datasource` through `provider`. Holds the data source's lock (refusing a
    /// second backup of it) and the store lock shared (so gc cannot sweep meanwhile).
    public func backup(provider: WorkloadProviderHandle, datasource: DataSourceRecord, options: Options) throws -> BackupReport {
        let started = Date()
        let locks = try BackupLocks.acquire(dataDirectory: dataDirectory, datasource: datasource)
        defer { withExtendedLifetime(locks) {} }

        var notes: [String] = []
        var mode = options.mode
        var previous: (record: RecoveryPointRecord, index: RecoveryPointIndex)?
        if let record = try catalog.latestRecoveryPoint(datasource: datasource.id) {
            do {
                previous = (record, try RecoveryPointIndex.load(store.directory + "/" + record.indexPath))
            } catch {
                notes.append("the previous recovery point \(record.id) could not be read (\(error)); this backup reads everything")
            }
        }
        if previous == nil && mode != .full {
            notes.append("no earlier recovery point: the first backup is a full copy (the initial replica)")
            mode = .full
        }
        let context = try provider.context()
        context.onProgress = nil
        let cancellation = options.cancellation
        let request = SnapshotRequest(datasource: datasource.id, mode: mode, previousToken: previous?.record.token,
                                      options: options.providerOptions)
        let snapshot = try provider.prepareSnapshot(request, context: context)
        CrashPoint.hit("backup.prepared")
        let description = snapshot.description
        let batch = ChunkCommitBatch(store: store)
        var finished = false
        defer {
            if !finished {
                // The chunks written so far are complete: publishing them is the checkpoint
                // of an interrupted backup (the next one deduplicates against them; gc
                // removes them if nothing ever references them).
                if (try? batch.publish()) == nil { batch.discard() }
                _ = try? snapshot.finish(committed: false)
            }
        }

        let counters = BackupCounters()
        let total = description.streams.reduce(0) { $0 + $1.size }
        let pipeline = BackupPipeline(store: store, batch: batch, counters: counters, workers: options.workers,
                                      streams: description.streams.count)
        if let onProgress = options.onProgress {
            pipeline.onChunkDone = { bytes in onProgress(counters.advance(bytes), total) }
        }
        let checksReplica = previous == nil && options.verifyInitialReplica
        pipeline.checksumsNewChunks = checksReplica
        try pipeline.start()
        var report = BackupReport(recoveryPoint: RecoveryPointRecord(
            id: "", datasourceId: datasource.id, time: started, kind: mode, consistency: description.consistency,
            reason: description.reason, pauseMs: description.pauseMs, logicalBytes: total, bytesRead: 0, bytesNew: 0,
            bytesStored: 0, durationMs: 0, token: nil, changeSource: .full, indexPath: "", status: "ok", damage: nil),
            datasourceName: datasource.name, provider: provider.id)
        var changeSources = Set<ChangeSource>()
        var streamLayouts: [(chunking: RecoveryPointIndex.Chunking, size: UInt64)] = []
        do {
            for (number, stream) in description.streams.enumerated() {
                if stream.kind == .block {
                    let source = try feedBlockStream(number, stream, snapshot: snapshot, mode: mode, previous: previous,
                                                     pipeline: pipeline, counters: counters, report: &report, notes: &notes,
                                                     onProgress: options.onProgress, total: total, cancellation: cancellation)
                    changeSources.insert(source)
                    streamLayouts.append((.fixed, stream.size))
                } else {
                    try feedFileStream(number, stream, snapshot: snapshot, pipeline: pipeline, counters: counters, context: context)
                    changeSources.insert(.full)
                    streamLayouts.append((.contentDefined, stream.size))
                }
                try context.checkCancelled()
                try cancellation?.check()
            }
        } catch {
            pipeline.fail(error)
            _ = try? pipeline.finish()
            throw error
        }
        let entries = try pipeline.finish()
        try batch.publish()

        let finish = try snapshot.finish(committed: true)
        finished = true
        CrashPoint.hit("snapshot.finished")
        notes += finish.notes ?? []

        let rpID = RecoveryPointID.make(started)
        let directory = RecoveryPointID.directoryName(forDataSource: datasource.id)
        let relativePath = "points/\(directory)/\(rpID).dpmidx"
        let index = RecoveryPointIndex(
            manifest: .init(storeId: store.configuration.id, datasource: datasource.id, datasourceName: datasource.name,
                            provider: provider.id, rp: rpID, time: started, kind: mode, consistency: description.consistency,
                            reason: description.reason, pauseMs: description.pauseMs, token: finish.token,
                            parentRp: mode == .full ? nil : previous?.record.id, metadata: description.metadata,
                            streams: description.streams.map { .init(name: $0.name, kind: $0.kind, size: $0.size) }),
            streams: zip(streamLayouts, entries).map { layout, streamEntries in
                RecoveryPointIndex.Stream(size: layout.size, chunking: layout.chunking,
                                          chunkSize: layout.chunking == .fixed ? store.chunkSize : 0, entries: streamEntries)
            })
        try index.write(to: store.directory + "/" + relativePath)
        CrashPoint.hit("index.written")

        let changeSource: ChangeSource = changeSources.contains(.hashed) ? .hashed : (changeSources.contains(.full) ? .full : .tracked)
        var record = report.recoveryPoint
        record.id = rpID
        record.token = finish.token
        record.indexPath = relativePath
        record.bytesRead = counters.bytesRead
        record.bytesNew = counters.bytesNew
        record.bytesStored = counters.bytesStored
        record.changeSource = changeSource
        record.durationMs = Int(Date().timeIntervalSince(started) * 1000)
        record.status = checksReplica ? RecoveryPointStatus.unverified : RecoveryPointStatus.ok
        try catalog.insert(record)
        CrashPoint.hit("catalog.inserted")

        report.recoveryPoint = record
        report.chunksTotal = entries.reduce(0) { $0 + $1.count }
        report.chunksRead = counters.chunksRead
        report.chunksNew = counters.chunksNew
        report.chunksDeduplicated = counters.chunksDeduplicated
        report.chunksZero += counters.chunksZeroRead
        report.notes = notes
        if checksReplica {
            CrashPoint.hit("replica-check.started")
            let verifyStarted = Date()
            let check = try ReplicaVerification.run(point: record, written: batch.written, store: store, catalog: catalog)
            report.verification = check
            report.verified = check.passed
            report.verifyMs = Int(Date().timeIntervalSince(verifyStarted) * 1000)
            if let checked = try catalog.recoveryPoint(id: record.id) { report.recoveryPoint = checked }
        }
        return report
    }

    /// Plans and feeds one block stream; returns how its changes were found.
    private func feedBlockStream(_ number: Int, _ stream: StreamDescription, snapshot: SnapshotHandle, mode: BackupMode,
                                 previous: (record: RecoveryPointRecord, index: RecoveryPointIndex)?, pipeline: BackupPipeline,
                                 counters: BackupCounters, report: inout BackupReport, notes: inout [String],
                                 onProgress: ((UInt64, UInt64) -> Void)?, total: UInt64, cancellation: CancellationFlag?) throws -> ChangeSource {
        let extents = try snapshot.extents(stream: number)
        try ChunkPlan.validate(extents, size: stream.size, provider: snapshot.provider.info.id, stream: stream.name)
        var previousEntries: [RecoveryPointIndex.Entry]?
        if let previous, number < previous.index.streams.count, previous.index.manifest.streams[number].name == stream.name {
            let old = previous.index.streams[number]
            if old.size == stream.size && old.chunking == .fixed && old.chunkSize == store.chunkSize { previousEntries = old.entries }
        }
        var changed: [Extent]?
        var source = ChangeSource.full
        if mode != .full {
            if let token = previous?.record.token, previousEntries != nil {
                changed = try snapshot.changes(stream: number, since: token)
            }
            if changed == nil {
                source = .hashed
                notes.append("stream \(stream.name): no trustworthy change tracking since the previous point; every allocated block was read and hashed")
            } else {
                source = .tracked
            }
        }
        let plan = ChunkPlan(chunkSize: store.chunkSize, streamSize: stream.size, extents: extents, changed: changed,
                             previous: previousEntries)
        pipeline.reserve(stream: number, count: plan.count)
        for (index, action) in plan.actions.enumerated() {
            let length = plan.length(of: index)
            switch action {
            case .zero:
                pipeline.set(stream: number, index: index, .zero(length))
                report.chunksZero += 1
            case .excluded:
                pipeline.set(stream: number, index: index, RecoveryPointIndex.Entry(digest: .zero, length: UInt32(length), flag: .excluded))
                report.chunksExcluded += 1
            case .reuse(let entry):
                pipeline.set(stream: number, index: index, entry)
                report.chunksUnchanged += 1
            case .read(let ranges):
                if let cancellation, cancellation.isCancelled {
                    context(snapshot).cancel()
                    try cancellation.check()
                }
                let buffer = try pipeline.takeBuffer()
                do {
                    var position = 0
                    let chunkStart = UInt64(index) * UInt64(store.chunkSize)
                    for range in ranges {
                        if range.lowerBound > position { memset(buffer.baseAddress! + position, 0, range.lowerBound - position) }
                        try snapshot.read(stream: number, offset: chunkStart + UInt64(range.lowerBound),
                                          into: UnsafeMutableRawBufferPointer(rebasing: buffer[range]))
                        position = range.upperBound
                    }
                    if length > position { memset(buffer.baseAddress! + position, 0, length - position) }
                } catch {
                    pipeline.giveBack(buffer)
                    throw error
                }
                counters.read(ranges.reduce(0) { $0 + $1.count })
                try pipeline.submit(.init(stream: number, index: index, buffer: buffer, length: length))
                continue
            }
            if let onProgress { onProgress(counters.advance(length), total) }
        }
        return source
    }

    func context(_ snapshot: SnapshotHandle) -> CallContext { snapshot.context }

    /// Reads a byte stream sequentially and cuts it into content-defined chunks.
    private func feedFileStream(_ number: Int, _ stream: StreamDescription, snapshot: SnapshotHandle, pipeline: BackupPipeline,
                                counters: BackupCounters, context: CallContext) throws {
        pipeline.reserve(stream: number, count: 0)
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * ContentDefinedChunker.maximum, alignment: 4096)
        defer { staging.deallocate() }
        var filled = 0
        var offset: UInt64 = 0
        while true {
            let room = staging.count - filled
            let want = Int(min(UInt64(room), stream.size - offset))
            if want > 0 {
                try snapshot.read(stream: number, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: staging[filled..<filled + want]))
                offset += UInt64(want)
                filled += want
                counters.read(0)
            }
            let atEnd = offset == stream.size
            var consumed = 0
            while let cut = ContentDefinedChunker.cut(UnsafeRawBufferPointer(rebasing: staging[consumed..<filled]), atEnd: atEnd) {
                let buffer = try pipeline.takeBuffer()
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: staging[consumed..<consumed + cut]))
                let slot = pipeline.appendSlot(stream: number)
                try pipeline.submit(.init(stream: number, index: slot, buffer: buffer, length: cut))
                consumed += cut
            }
            if consumed > 0 {
                staging.baseAddress!.copyMemory(from: staging.baseAddress! + consumed, byteCount: filled - consumed)
                filled -= consumed
            }
            if atEnd && filled == 0 { break }
            try context.checkCancelled()
        }
    }
}

/// The locks one backup holds: its data source's, exclusively and without waiting, and the
/// store's, shared (waiting while a gc sweeps).
struct BackupLocks {
    let datasource: FileLock
    let store: FileLock

    static func acquire(dataDirectory: DataDirectory, datasource: DataSourceRecord) throws -> BackupLocks {
        try dataDirectory.create()
        let path = dataDirectory.dataSourceLock(datasource.id)
        guard let own = try FileLock.acquire(path, .exclusive, wait: false) else {
            throw HostError(.busy, "a backup or recovery of \(datasource.name) is already running (\(FileLock.holder(path))); wait for it or cancel it with `dpm jobs cancel`")
        }
        own.describeHolder("pid \(getpid())")
        guard let store = try FileLock.acquire(dataDirectory.locksDirectory + "/store.lock", .shared, wait: true) else {
            throw HostError(.busy, "the store is locked")
        }
        return BackupLocks(datasource: own, store: store)
    }
}
