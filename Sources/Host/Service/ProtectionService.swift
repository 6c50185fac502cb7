import Foundation
import PluginAPI

/// The operations of dpm on one data directory, as the CLI and the server call them:
/// resolve data sources, back up, list and read recovery points, verify, prune, gc.
/// The CLI parses and prints; everything it does goes through here.
public final class ProtectionService {
    public let dataDirectory: DataDirectory
    public let settings: Settings
    private var cachedRegistry: ProviderRegistry?
    private var cachedCatalog: Catalog?
    private var cachedStore: ChunkStore?
    /// Unlocks encrypted long-term copies during recoveries (set by `pointForRecovery`).
    var recoveryKeyring: TierKeyring?

    public init(dataDirectory: DataDirectory) throws {
        self.dataDirectory = dataDirectory
        settings = try Settings(dataDirectory: dataDirectory)
    }

    public func registry() throws -> ProviderRegistry {
        if let cachedRegistry { return cachedRegistry }
        let registry = try ProviderRegistry(dataDirectory: dataDirectory, settings: settings)
        cachedRegistry = registry
        return registry
    }

    public func catalog() throws -> Catalog {
        if let cachedCatalog { return cachedCatalog }
        let catalog = try Catalog(dataDirectory: dataDirectory)
        cachedCatalog = catalog
        return catalog
    }

    /// The chunk store; created on first use. An encrypted store needs its key file from
    /// `DPM_KEY_FILE` or the `store.key_file` setting.
    public func store(create: Bool = true) throws -> ChunkStore {
        if let cachedStore { return cachedStore }
        let keyFile = ProcessInfo.processInfo.environment["DPM_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? settings["store.key_file"]
        let store = try ChunkStore.open(directory: dataDirectory.storeDirectory, keyFile: keyFile, create: create)
        cachedStore = store
        return store
    }

    // MARK: Data sources

    /// Finds a data source by id or name: in the catalog first, then by asking the enabled
    /// workload providers (optionally only `provider`). A newly found source is recorded.
    public func resolveDataSource(_ name: String, provider providerID: String? = nil) throws -> (DataSourceRecord, WorkloadProviderHandle) {
        let registry = try registry()
        // An id the catalog knows is that data source.
        if let known = try catalog().dataSource(id: name), providerID == nil || providerID == known.provider {
            return (known, try registry.workload(known.provider))
        }
        // A name: the catalog's, unless its provider no longer offers that id (a VM removed
        // and added again under its name has a new id; its old points keep the old one).
        let named = try catalog().dataSources(named: name).filter { providerID == nil || providerID == $0.provider }
        if named.count == 1, let known = named.first {
            let handle = try registry.workload(known.provider)
            let live = try? handle.enumerate()
            if live == nil || live?.contains(where: { $0.id == known.id }) == true { return (known, handle) }
        }
        var matches: [(DataSourceDescription, WorkloadProviderHandle)] = []
        var problems: [String] = []
        for loaded in registry.enabledWorkloads where providerID == nil || loaded.info.id == providerID {
            guard loaded.info.status == "ready" else { continue }
            do {
                let handle = try registry.workload(loaded.info.id)
                for source in try handle.enumerate() where source.id == name || source.name == name {
                    matches.append((source, handle))
                }
            } catch {
                problems.append(String(describing: error))
            }
        }
        guard matches.count == 1, let (source, handle) = matches.first else {
            if matches.count > 1 {
                throw HostError(.usage, "'\(name)' names \(matches.count) data sources (\(matches.map { "\($0.1.id):\($0.0.id)" }.joined(separator: ", "))); use --provider or the id")
            }
            let hint = problems.isEmpty ? "" : " (providers that could not answer: \(problems.joined(separator: "; ")))"
            throw HostError(.notFound, "no data source '\(name)'; see `dpm datasources list`\(hint)")
        }
        let record = DataSourceRecord(id: source.id, provider: handle.id, name: source.name, kind: source.kind, retentionDays: 14,
                                      created: Date(), host: source.details?["host"]?.stringValue)
        try catalog().upsert(record)
        return (try catalog().dataSource(source.id) ?? record, handle)
    }

    /// A data source the catalog knows (it has been backed up), by id or name.
    public func knownDataSource(_ name: String) throws -> DataSourceRecord {
        guard let record = try catalog().dataSource(name) else {
            throw HostError(.notFound, "'\(name)' has no recovery points; back it up first with `dpm backup \(name)`")
        }
        return record
    }

    // MARK: Backup and recovery points

    /// The churn rate the catalog has observed for a data source: new bytes per backup as a
    /// fraction of its size, averaged over its last ten incremental points; 10% before any.
    public func observedChurn(_ datasource: String) throws -> Double {
        let points = try catalog().recoveryPoints(datasource: datasource).dropFirst().suffix(10).filter { $0.logicalBytes > 0 }
        guard !points.isEmpty else { return 0.1 }
        return points.reduce(0.0) { $0 + Double($1.bytesNew) / Double($1.logicalBytes) } / Double(points.count)
    }

    /// Backs up a data source, recording the run as a job (or in `job`, a job row the
    /// server created for it). A damaged initial replica is returned (its report says what the
    /// check found) and its job recorded as failed.
    public func backup(_ name: String, provider: String? = nil, options: BackupEngine.Options, job existingJob: Int64? = nil) throws -> BackupReport {
        let (source, handle) = try resolveDataSource(name, provider: provider)
        let catalog = try catalog()
        var options = options
        var providerOptions: [String: JSONValue] = ["churn_rate": .number(try observedChurn(source.id)), "concurrent_backups": .number(1)]
        if case .object(let given)? = options.providerOptions { providerOptions.merge(given) { $1 } }
        options.providerOptions = .object(providerOptions)
        let job = try existingJob ?? catalog.createJob(kind: "backup", datasource: source.id)
        do {
            let engine = BackupEngine(dataDirectory: dataDirectory, store: try store(), catalog: catalog)
            options.onProgress = jobProgress(job, catalog: catalog, forwardingTo: options.onProgress)
            let report = try engine.backup(provider: handle, datasource: source, options: options)
            let result = String(decoding: (try? JSONCoding.encode(report)) ?? Data(), as: UTF8.self)
            if let check = report.verification, !check.passed {
                try catalog.finishJob(job, state: "failed", message: "recovery point \(report.recoveryPoint.id): \(check.summary)", result: result)
            } else {
                try catalog.finishJob(job, state: "succeeded", message: "recovery point \(report.recoveryPoint.id)", result: result)
            }
            return report
        } catch {
            try? catalog.finishJob(job, state: (error as? HostError)?.code == .cancelled ? "cancelled" : "failed", message: String(describing: error))
            throw error
        }
    }

    public func recoveryPoints(_ name: String) throws -> (DataSourceRecord, [RecoveryPointRecord]) {
        let source = try knownDataSource(name)
        return (source, try catalog().recoveryPoints(datasource: source.id))
    }

    /// A recovery point of a data source: `latest` (the newest healthy one) or an id.
    public func recoveryPoint(_ source: DataSourceRecord, _ spec: String) throws -> RecoveryPointRecord {
        if spec == "latest" {
            guard let point = try catalog().latestRecoveryPoint(datasource: source.id) else {
                throw HostError(.notFound, "\(source.name) has no healthy recovery point; see `dpm rp list \(source.name)`")
            }
            return point
        }
        guard let point = try catalog().recoveryPoint(id: spec), point.datasourceId == source.id else {
            throw HostError(.notFound, "\(source.name) has no recovery point '\(spec)'; see `dpm rp list \(source.name)`")
        }
        return point
    }

    /// Opens a recovery point for random-access reads: from the disk store, or, for an
    /// index path `online:NAME` (see `pointForRecovery`), from the online tier.
    public func reader(_ point: RecoveryPointRecord) throws -> RecoveryPointReader {
        if point.isDamaged {
            Log.warning("recovery point \(point.id) is marked damaged (\(point.damage ?? "")); reading what is intact")
        }
        if point.indexPath.hasPrefix(Self.onlineIndexScheme) {
            let name = String(point.indexPath.dropFirst(Self.onlineIndexScheme.count))
            guard let copy = try catalog().tierCopies(datasource: point.datasourceId, tier: Self.onlineTierID).first(where: { $0.name == name }) else {
                throw HostError(.notFound, "no online copy \(name); see `dpm rp list`")
            }
            let counter = OnlineReadCounter()
            let reader = try onlineReader(copy, keyring: recoveryKeyring ?? keyring(), counter: counter)
            reader.tierReads = counter
            return reader
        }
        return try RecoveryPointReader(store: try store(create: false), record: point)
    }

    /// The index path of a point read from the online tier: this prefix and the copy's name.
    static let onlineIndexScheme = "online:"

    /// Deletes one recovery point (catalog row first, then its index); gc frees its chunks.
    public func deleteRecoveryPoint(_ source: DataSourceRecord, _ point: RecoveryPointRecord) throws {
        let lockPath = dataDirectory.dataSourceLock(source.id)
        guard let lock = try FileLock.acquire(lockPath, .exclusive, wait: false) else {
            throw HostError(.busy, "a backup or recovery of \(source.name) is running; delete the point when it has finished")
        }
        defer { withExtendedLifetime(lock) {} }
        try catalog().deleteRecoveryPoint(point.id)
        unlink(try store(create: false).directory + "/" + point.indexPath)
    }

    // MARK: Maintenance

    /// Verifies the recovery points of one data source (or all), or one point.
    public func verify(_ name: String?, rp: String?, onProgress: ((UInt64, UInt64) -> Void)?) throws -> Verifier.Result {
        var points: [RecoveryPointRecord]
        if let name {
            let (source, all) = try recoveryPoints(name)
            points = try rp.map { [try recoveryPoint(source, $0)] } ?? all
        } else {
            guard rp == nil else { throw HostError(.usage, "--rp needs a data source: dpm verify DATASOURCE --rp ID") }
            points = try catalog().allRecoveryPoints()
        }
        guard !points.isEmpty else { return Verifier.Result() }
        let verifier = Verifier(store: try store(create: false), catalog: try catalog())
        verifier.onProgress = onProgress
        return try verifier.verify(points: points)
    }

    /// Applies the disk retention, then lets each tier expire the long-term copies whose own
    /// retention has ended (a tier that cannot answer is reported, not fatal).
    public func prune(dryRun: Bool) throws -> Pruner.Result {
        var result = try Pruner(dataDirectory: dataDirectory, store: try store(), catalog: try catalog()).prune(dryRun: dryRun)
        if dryRun {
            result.expiredCopies = try catalog().tierCopies().filter { $0.expires <= Date() }.map { "\($0.tier) \($0.name)" }
        } else {
            do {
                result.expiredCopies = try expireTierCopies().map { "\($0.tier) \($0.name)" }
            } catch {
                result.skipped.append("long-term copies: \(error)")
            }
            if try catalog().tierCopies(tier: Self.onlineTierID).contains(where: { $0.expires <= Date() }) {
                do {
                    let online = try onlineMaintenance(grace: 0, expireOnly: true)
                    result.expiredCopies += (online["points_expired"]?.arrayValue ?? []).compactMap { $0.stringValue.map { "\(Self.onlineTierID) \($0)" } }
                } catch {
                    result.skipped.append("online copies: \(error)")
                }
            }
        }
        return result
    }

    public func collectGarbage(grace: TimeInterval?) throws -> GarbageCollector.Result {
        let grace = try grace ?? settings["gc.grace"].map { try Duration.parse($0, what: "setting gc.grace") } ?? 86_400
        return try GarbageCollector(dataDirectory: dataDirectory, store: try store(), catalog: try catalog()).collect(grace: grace)
    }

    public func setRetention(_ name: String, days: Int) throws -> DataSourceRecord {
        guard (1...36_500).contains(days) else { throw HostError(.usage, "retention must be 1 to 36500 days, not \(days)") }
        let source = try knownDataSource(name)
        try catalog().setRetention(datasource: source.id, days: days)
        return try knownDataSource(source.id)
    }
}
