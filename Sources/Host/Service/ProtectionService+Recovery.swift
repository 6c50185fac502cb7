import Foundation
import PluginAPI

/// Recoveries: whole data sources through their provider, raw streams, browsing and items.
/// Every recovery is a job (progress in `dpm jobs`), honours a bandwidth limit, and can
/// email its outcome.
extension ProtectionService {
    /// Recovers a recovery point through its workload provider (original location,
    /// alternate location, disks only), which reads the point through host callbacks.
    public func restore(_ point: RecoveryPointRecord, request: RestoreRequest, options: RecoveryOptions = RecoveryOptions(),
                        onProgress: ((UInt64, UInt64) -> Void)?) throws -> JSONValue {
        let source = try knownDataSource(point.datasourceId)
        return try recovery(point, source: source, kind: "recovery", options: options) { job in
            try runProviderRecovery(point, source: source, job: job, options: options, onProgress: onProgress) { provider, context in
                try provider.restore(request, context: context)
            }
        }
    }

    /// Lists items inside a recovery point (volumes, folders, files) through its provider.
    public func browse(_ point: RecoveryPointRecord, path: String) throws -> (BrowseReply, chunksRead: Int) {
        let source = try knownDataSource(point.datasourceId)
        var listing = BrowseReply(entries: [])
        let reply = try runProviderRecovery(point, source: source, job: nil, options: RecoveryOptions(), onProgress: nil) { provider, context in
            listing = try provider.browse(BrowseRequest(path: path), context: context)
            return .object([:])
        }
        return (listing, Int(reply["chunks_read"]?.numberValue ?? 0))
    }

    /// Copies items out of a recovery point into a folder (item-level recovery).
    public func extract(_ point: RecoveryPointRecord, items: [String], directory: String, options: RecoveryOptions = RecoveryOptions(),
                        onProgress: ((UInt64, UInt64) -> Void)?) throws -> JSONValue {
        let source = try knownDataSource(point.datasourceId)
        return try recovery(point, source: source, kind: "item-recovery", options: options) { job in
            try runProviderRecovery(point, source: source, job: job, options: options, onProgress: onProgress) { provider, context in
                try provider.extract(ExtractRequest(items: items, directory: directory), context: context)
            }
        }
    }

    /// Runs a recovery as a job, with its completion email, whatever the kind.
    func recovery(_ point: RecoveryPointRecord, source: DataSourceRecord, kind: String, options: RecoveryOptions,
                  _ body: (Int64) throws -> JSONValue) throws -> JSONValue {
        let catalog = try catalog()
        let job = try catalog.createJob(kind: kind, datasource: source.id)
        var outcome: Result<JSONValue, Error>
        do {
            outcome = .success(try body(job))
            try catalog.finishJob(job, state: "succeeded", message: "recovered \(source.name) from \(point.id)",
                                  result: (try? outcome.get())?.description)
        } catch {
            outcome = .failure(error)
            try? catalog.finishJob(job, state: (error as? HostError)?.code == .cancelled ? "cancelled" : "failed", message: String(describing: error))
        }
        if let recipient = options.notify {
            let succeeded = (try? outcome.get()) != nil
            let subject = "dpm: \(kind) of \(source.name) from \(point.id) \(succeeded ? "succeeded" : "FAILED")"
            var body = "Data source: \(source.name) (\(source.id))\nRecovery point: \(point.id), \(ISOTime.string(point.time))\nJob: \(job)\n"
            switch outcome {
            case .success(let reply): body += "Outcome: succeeded\n\n\(reply)\n"
            case .failure(let error): body += "Outcome: failed\n\n\(error)\n"
            }
            do {
                try SMTPNotifier(settings: settings).send(to: recipient, subject: subject, body: body)
            } catch {
                Log.warning("the completion email to \(recipient) could not be sent: \(error)")
                if case .success(var reply) = outcome, case .object(var object) = reply {
                    object["notify_error"] = .string(String(describing: error))
                    reply = .object(object)
                    outcome = .success(reply)
                }
            }
        }
        return try outcome.get()
    }

    /// A progress callback that also records the job's progress in the catalog (at most once a
    /// second), for `dpm jobs list|show`.
    func jobProgress(_ job: Int64, catalog: Catalog, forwardingTo onProgress: ((UInt64, UInt64) -> Void)?) -> (UInt64, UInt64) -> Void {
        // Called from the pipeline's threads: the time of the last update is guarded.
        let lock = NSLock()
        var lastUpdate = Date.distantPast
        return { done, total in
            onProgress?(done, total)
            lock.lock()
            let due = Date().timeIntervalSince(lastUpdate) > 1 || done == total
            if due { lastUpdate = Date() }
            lock.unlock()
            if due { try? catalog.updateJobProgress(job, done: done, total: total) }
        }
    }

    /// Calls a provider with the recovery point bound to the call, reporting progress into the job.
    func runProviderRecovery(_ point: RecoveryPointRecord, source: DataSourceRecord, job: Int64?, options: RecoveryOptions,
                             onProgress: ((UInt64, UInt64) -> Void)?,
                             _ call: (WorkloadProviderHandle, CallContext) throws -> JSONValue) throws -> JSONValue {
        let provider = try registry().workload(source.provider)
        let catalog = try catalog()
        do {
            let reader = try self.reader(point)
            reader.throttle = options.throttle
            defer { reader.close() }
            let context = try provider.context()
            context.recoveryPoint = reader
            context.onProgress = job.map { jobProgress($0, catalog: catalog, forwardingTo: onProgress) } ?? onProgress
            var reply = try call(provider, context)
            if case .object(var object) = reply {
                object["chunks_read"] = .number(Double(reader.chunksLoaded))
                object["chunks_total"] = .number(Double(reader.index.streams.reduce(0) { $0 + $1.entries.count }))
                object["chunks_stored"] = .number(Double(reader.index.dataDigests.count))
                object["bytes_read"] = .number(Double(reader.bytesLoaded))
                if let tierReads = reader.tierReads {
                    object["tier_objects_read"] = .number(Double(tierReads.objects))
                    object["tier_bytes_read"] = .number(Double(tierReads.bytes))
                }
                reply = .object(object)
            }
            return reply
        }
    }

    /// Writes every stream of a recovery point as raw files in `directory`.
    public func restoreRaw(_ point: RecoveryPointRecord, directory: String, options: RecoveryOptions = RecoveryOptions(),
                           onProgress: ((UInt64, UInt64) -> Void)?) throws -> RawRestorer.Report {
        let source = try knownDataSource(point.datasourceId)
        let reply = try recovery(point, source: source, kind: "recovery", options: options) { job in
            let report = try restoreRawStreams(point, directory: directory, throttle: options.throttle,
                                               onProgress: jobProgress(job, catalog: try catalog(), forwardingTo: onProgress))
            return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(report))
        }
        return try JSONCoding.decode(RawRestorer.Report.self, from: JSONCoding.encode(reply))
    }

    func restoreRawStreams(_ point: RecoveryPointRecord, directory: String, throttle: Throttle?,
                           onProgress: ((UInt64, UInt64) -> Void)?) throws -> RawRestorer.Report {
        guard !point.indexPath.hasPrefix(Self.onlineIndexScheme) else {
            throw HostError(.unsupported, "--raw reads the disk store; recover an online point with --copy-disks DIR --format raw instead")
        }
        let store = try store(create: false)
        let index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
        try FileSystem.makeDirectory(directory)
        let restorer = RawRestorer(store: store)
        restorer.onProgress = onProgress
        restorer.throttle = throttle
        var report = RawRestorer.Report()
        for (number, stream) in index.manifest.streams.enumerated() {
            let name = RecoveryPointID.directoryName(forDataSource: stream.name) + ".raw"
            let part = try restorer.restore(index: index, stream: number, to: directory + "/" + name)
            report.files += part.files
            report.bytes += part.bytes
            report.chunksRead += part.chunksRead
        }
        return report
    }
}
