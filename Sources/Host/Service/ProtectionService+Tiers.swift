import Foundation
import PluginAPI

/// Long-term copies on tiers (tape, online): making them from the newest disk recovery
/// point, listing them, staging them back into the disk store for recovery, expiring them
/// and rebuilding their catalog from the tier alone.
extension ProtectionService {
    /// What a long-term copy should be, beyond its group's policy.
    public struct TierCopyOptions {
        public var tier: String
        /// Overrides of the group's policy (a data source outside a group uses these or defaults).
        public var retentionDays: Int?
        public var encrypt: Bool?
        public var compress: Bool?
        public var keyring: TierKeyring?
        public var onProgress: ((UInt64, UInt64) -> Void)?

        public init(tier: String) { self.tier = tier }
    }

    public struct TierCopyReport: Codable, Sendable {
        public var copy: TierCopyRecord
        public var chunks: Int
        public var plainBytes: UInt64
        public var archiveBytes: UInt64
        public var durationMs: Int
        public var encrypted: Bool
    }

    /// What staging a long-term copy into the disk store cost.
    public struct StagingReport: Codable, Sendable {
        public var tier: String
        public var name: String
        public var location: String
        /// Archive bytes read back from the tier; 0 when an earlier staging was reused.
        public var bytesRead: UInt64
        public var chunksReceived: Int
        public var chunksNew: Int
        public var reused: Bool
        public var durationMs: Int
    }

    public func keyring() -> TierKeyring { TierKeyring(dataDirectory: dataDirectory, settings: settings) }

    // MARK: Making copies

    /// Copies the newest healthy disk recovery point of a data source to a tier: a full,
    /// self-contained copy, read from the store (the source is never read again).
    public func copyToTier(_ name: String, options: TierCopyOptions, job existingJob: Int64? = nil) throws -> TierCopyReport {
        let source = try knownDataSource(name)
        let catalog = try catalog()
        let tier = try registry().tier(options.tier)
        let group = try catalog.groupName(ofDataSource: source.id).flatMap { try catalog.group($0) }
        let job = try existingJob ?? catalog.createJob(kind: options.tier == "tape-library" ? "tape-copy" : "online-copy", datasource: source.id)
        do {
            if options.tier == "tape-library", let reason = try migrationState(source) {
                throw HostError(.transient, "\(source.name) is migrating (\(reason)); protection of migrating VMs does not go to tape, "
                    + "so the copy waits until the migration has finished")
            }
            guard let point = try catalog.latestRecoveryPoint(datasource: source.id) else {
                throw HostError(.notFound, "\(source.name) has no healthy disk recovery point to copy; back it up first")
            }
            let retentionDays = options.retentionDays ?? (options.tier == "tape-library" ? group?.tapeRetention.days : group?.onlineRetentionDays) ?? 365
            let encrypt = options.encrypt ?? group?.encryption ?? false
            let compress = options.compress ?? group?.compression ?? true
            let encryption = encrypt ? try (options.keyring ?? keyring()).encryptionForNewCopies() : nil
            let now = Date()
            let archiveName = "\(point.id).\(String(format: "%08x", UInt32.random(in: 0...UInt32.max)))"
            var request = ArchiveRequest(name: archiveName, datasource: source.id, rp: point.id, time: point.time, retentionDays: retentionDays,
                                         size: point.logicalBytes)
            request.expires = now.addingTimeInterval(Double(retentionDays) * 86_400)
            request.datasourceName = source.name
            request.group = group?.name
            request.pool = group?.tapePool ?? group?.name ?? "default"
            request.library = group?.tapeLibrary
            request.drives = group?.tapeDrives
            request.colocate = group?.colocate
            request.frequency = group?.tapeFrequency.rawValue
            if let encryption { request.encryption = try JSONCoding.toJSON(encryption.descriptor) }
            request.summary = try JSONCoding.toJSON(TierCopySummary(datasource: source, point: point))

            let store = try store(create: false)
            // The store lock, shared: gc cannot sweep the chunks being copied.
            let lock = try FileLock.acquire(dataDirectory.locksDirectory + "/store.lock", .shared, wait: true)
            defer { withExtendedLifetime(lock) {} }
            let writer = TierArchiveWriter(store: store)
            writer.onProgress = jobProgress(job, catalog: catalog, forwardingTo: options.onProgress)
            var outcome: (TierArchiveManifest, TierArchiveWriter.Report)?
            let started = Date()
            let archive = try tier.store(request) { write in
                try withoutActuallyEscaping(write) { sink in
                    outcome = try writer.write(point: point, source: source,
                                               options: .init(name: archiveName, compress: compress, encryption: encryption), sink: sink)
                }
            }
            guard let report = outcome?.1 else { throw HostError(.internalError, "the archive of \(point.id) was not written") }
            let copy = TierCopyRecord(tier: options.tier, name: archive.name, datasourceId: source.id, rpId: point.id, time: point.time,
                                      created: now, expires: archive.expires, bytes: archive.bytes, location: archive.location,
                                      volumes: archive.volumes, point: point, keyFingerprint: encryption?.key.fingerprint)
            try catalog.insert(copy)
            let result = TierCopyReport(copy: copy, chunks: report.chunks, plainBytes: report.plainBytes, archiveBytes: report.archiveBytes,
                                        durationMs: Int(Date().timeIntervalSince(started) * 1000), encrypted: encryption != nil)
            try catalog.finishJob(job, state: "succeeded", message: "\(point.id) copied to \(options.tier) at \(archive.location)",
                                  result: String(decoding: (try? JSONCoding.encode(result)) ?? Data(), as: UTF8.self))
            return result
        } catch {
            try? catalog.finishJob(job, state: (error as? HostError)?.code == .cancelled ? "cancelled" : "failed", message: String(describing: error))
            throw error
        }
    }

    /// Why a data source is migrating, or nil: its workload provider answers the
    /// `datasource.state` command ({"migrating": bool, "state": "…"}); one that does not
    /// offer it has no migrations.
    func migrationState(_ source: DataSourceRecord) throws -> String? {
        let provider = try registry().workload(source.provider)
        let reply: JSONValue
        do {
            reply = try provider.command("datasource.state", .object(["id": .string(source.id)]))
        } catch let error as HostError where error.code == .unsupported || error.code == .planned {
            return nil
        }
        guard reply["migrating"]?.boolValue == true else { return nil }
        return reply["state"]?.stringValue ?? "migrating"
    }

    // MARK: Listing

    public func tierCopies(_ name: String) throws -> (DataSourceRecord, [TierCopyRecord]) {
        let source = try knownDataSource(name)
        return (source, try catalog().tierCopies(datasource: source.id))
    }

    /// The newest healthy copy of a point (`latest`: of the newest point with one), on one
    /// tier or any.
    public func tierCopy(_ source: DataSourceRecord, _ spec: String, tier: String?) throws -> TierCopyRecord {
        let copies = try catalog().tierCopies(datasource: source.id, tier: tier).filter { $0.status == "ok" }
        let chosen = spec == "latest" ? copies.last : copies.last { $0.rpId == spec || $0.name == spec }
        guard let chosen else {
            throw HostError(.notFound, "\(source.name) has no \(tier.map { "\($0) " } ?? "long-term ")copy of '\(spec)'; see `dpm rp list \(source.name)`")
        }
        return chosen
    }

    // MARK: Recovery from a tier

    /// Where a recovery reads from: a disk recovery point, or a tier copy staged into the
    /// disk store. `from` is "disk", a tier id, or nil (disk when the point is still on disk).
    public func pointForRecovery(_ source: DataSourceRecord, _ spec: String, from: String?, keyring: TierKeyring? = nil,
                                 onProgress: ((UInt64, UInt64) -> Void)? = nil) throws -> (RecoveryPointRecord, StagingReport?) {
        if from == nil || from == "disk" {
            do {
                return (try recoveryPoint(source, spec), nil)
            } catch let error as HostError where error.code == .notFound && from == nil {
                // Not on disk (any more): a long-term copy may hold it.
                guard (try? tierCopy(source, spec, tier: nil)) != nil else { throw error }
            }
        }
        let copy = try tierCopy(source, spec, tier: from == "disk" ? nil : from)
        recoveryKeyring = keyring ?? self.keyring()
        if copy.tier == Self.onlineTierID {
            // Online copies are read in place, chunk by chunk, as the recovery needs them.
            var record = copy.point
            record.indexPath = Self.onlineIndexScheme + copy.name
            return (record, StagingReport(tier: copy.tier, name: copy.name, location: copy.location, bytesRead: 0, chunksReceived: 0,
                                          chunksNew: 0, reused: false, durationMs: 0))
        }
        return try stage(copy, keyring: recoveryKeyring ?? self.keyring(), onProgress: onProgress)
    }

    /// Stages a tier copy into the disk store (`store/staging/DS/NAME.dpmidx` plus its
    /// chunks), reusing an earlier staging whose chunks are all still present. Staged
    /// indexes are gc roots until they are older than the gc grace period.
    public func stage(_ copy: TierCopyRecord, keyring: TierKeyring, onProgress: ((UInt64, UInt64) -> Void)?) throws -> (RecoveryPointRecord, StagingReport) {
        let store = try store()
        let relative = "staging/\(RecoveryPointID.directoryName(forDataSource: copy.datasourceId))/\(copy.name).dpmidx"
        var record = copy.point
        record.indexPath = relative
        let started = Date()
        let lock = try FileLock.acquire(dataDirectory.locksDirectory + "/store.lock", .shared, wait: true)
        defer { withExtendedLifetime(lock) {} }
        if let index = try? RecoveryPointIndex.load(store.directory + "/" + relative), index.dataDigests.allSatisfy(store.contains) {
            // Touch it: a reused staging lives another grace period.
            utimes(store.directory + "/" + relative, nil)
            return (record, StagingReport(tier: copy.tier, name: copy.name, location: copy.location, bytesRead: 0, chunksReceived: 0,
                                          chunksNew: 0, reused: true, durationMs: 0))
        }
        let what = "long-term copy \(copy.name) (\(copy.tier), \(copy.location))"
        let stager = try TierArchiveStager(store: store, what: what) { encryption in try keyring.unlock(encryption, what: what) }
        let tier = try registry().tier(copy.tier)
        var received: UInt64 = 0
        do {
            _ = try tier.read(copy.name) { bytes in
                try stager.feed(bytes)
                received += UInt64(bytes.count)
                onProgress?(received, copy.bytes)
            }
        } catch {
            stager.discard()
            if let host = error as? HostError, host.code == .corrupt || host.code == .io {
                try? catalog().markTierCopyDamaged(tier: copy.tier, name: copy.name, damage: host.message)
            }
            throw error
        }
        let staged = try stager.finish()
        guard staged.manifest.point.id == copy.rpId, staged.manifest.datasource.id == copy.datasourceId else {
            throw HostError(.corrupt, "\(what) holds \(staged.manifest.datasource.name) \(staged.manifest.point.id), not \(copy.rpId)")
        }
        try staged.index.write(to: store.directory + "/" + relative)
        return (record, StagingReport(tier: copy.tier, name: copy.name, location: copy.location, bytesRead: received,
                                      chunksReceived: staged.chunksReceived, chunksNew: staged.chunksNew, reused: false,
                                      durationMs: Int(Date().timeIntervalSince(started) * 1000)))
    }

    // MARK: Retention and recatalog

    /// Lets each tier expire what its retention has passed, and forgets those copies.
    public func expireTierCopies(now: Date = Date()) throws -> [TierCopyRecord] {
        var expired: [TierCopyRecord] = []
        let catalog = try catalog()
        for tierID in Set(try catalog.tierCopies().map(\.tier)) where tierID != Self.onlineTierID {
            let reply = try registry().tier(tierID).expire(now: now)
            let names = Set(reply.expired)
            for copy in try catalog.tierCopies(tier: tierID) where names.contains(copy.name) {
                try catalog.deleteTierCopy(tier: tierID, name: copy.name)
                expired.append(copy)
            }
        }
        return expired
    }

    /// Records the copies a tier found on its media (`tape.recatalog` and the like), creating
    /// the data sources a fresh server does not know yet.
    public func recordRecataloged(_ archives: [ArchiveDescription], tier: String) throws -> [TierCopyRecord] {
        let catalog = try catalog()
        var recorded: [TierCopyRecord] = []
        for archive in archives {
            guard let summaryJSON = archive.summary,
                  let summary = try? JSONCoding.fromJSON(TierCopySummary.self, summaryJSON) else {
                Log.warning("\(tier): archive \(archive.name) carries no dpm summary; skipped")
                continue
            }
            if try catalog.dataSource(summary.datasource.id) == nil {
                try catalog.upsert(summary.datasource)
            }
            let fingerprint = archive.encryption?["key_fingerprint"]?.stringValue
            let copy = TierCopyRecord(tier: tier, name: archive.name, datasourceId: summary.datasource.id, rpId: summary.point.id,
                                      time: summary.point.time, created: archive.time, expires: archive.expires, bytes: archive.bytes,
                                      location: archive.location, volumes: archive.volumes, point: summary.point, keyFingerprint: fingerprint)
            try catalog.insert(copy)
            recorded.append(copy)
        }
        return recorded
    }
}

/// What the host tells a tier about a copy, kept by the tier and handed back by `list` and
/// recatalog, so a fresh server can list and recover it.
struct TierCopySummary: Codable, Sendable {
    var datasource: DataSourceRecord
    var point: RecoveryPointRecord
}
