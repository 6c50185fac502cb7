import Foundation
import PluginAPI

/// The online tier (behaviour 7, Azure-like, on S3-compatible storage): setup and its
/// self-test, incremental syncs of recovery points, listing, disaster recovery on a new
/// server (`attach`), verification, expiry and gc of object versions.
///
/// The plugin moves objects; everything else is here: which chunks to send, encryption
/// (mandatory online), the layout (`OnlineLayout`), locks and retention.
extension ProtectionService {
    public static let onlineTierID = "online-tier"

    public struct OnlineSyncReport: Codable, Sendable {
        public var copy: TierCopyRecord
        public var upload: OnlineUploader.Report
        public var alreadyOnline: Bool
    }

    /// The online tier's provider, which must offer object calls.
    public func onlineTier() throws -> TierProviderHandle {
        let tier = try registry().tier(Self.onlineTierID)
        guard tier.keepsObjects else {
            throw HostError(.unsupported, "provider \(Self.onlineTierID) does not offer object storage (ABI 1.1); upgrade its plugin")
        }
        return tier
    }

    /// The bucket's description, or nil before `dpm online setup`.
    func onlineBucket(_ tier: TierProviderHandle) throws -> OnlineBucketDescription? {
        do {
            return try JSONCoding.decode(OnlineBucketDescription.self, from: try tier.getObject(OnlineLayout.bucketFile))
        } catch let error as HostError where error.code == .notFound {
            return nil
        } catch let error as DecodingError {
            throw HostError(.corrupt, "\(OnlineLayout.bucketFile) in the bucket is not dpm's", cause: error)
        }
    }

    /// The tier key of the bucket, unlocked by the passphrase (created with the first
    /// setup): the same key a new server unlocks with the same passphrase.
    func onlineKey(_ tier: TierProviderHandle, keyring: TierKeyring, create: Bool) throws -> TierKey {
        do {
            let wrapped = try JSONCoding.decode(WrappedTierKey.self, from: try tier.getObject(OnlineLayout.keyFile))
            let descriptor = TierArchiveManifest.Encryption(keyFingerprint: wrapped.keyFingerprint, wrappedKey: wrapped)
            return try keyring.unlock(descriptor, what: "the online bucket")
        } catch let error as HostError where error.code == .notFound && create {
            let encryption = try keyring.encryptionForNewCopies()
            let bytes = try JSONCoding.encode(encryption.wrapped, pretty: true)
            try bytes.withUnsafeBytes { _ = try tier.putObject(OnlineLayout.keyFile, $0) }
            return encryption.key
        } catch let error as HostError where error.code == .notFound {
            throw HostError(.notFound, "the bucket holds no dpm key (\(OnlineLayout.keyFile)); run `dpm online setup` first, or check the bucket name")
        } catch let error as DecodingError {
            throw HostError(.corrupt, "\(OnlineLayout.keyFile) in the bucket is damaged", cause: error)
        }
    }

    // MARK: Setup

    /// Configures the tier (plugin `setup`), checks the bucket, writes its description and
    /// key on first use, and proves that locks hold: a locked version must refuse deletion.
    public func onlineSetup(_ settings: JSONValue, lockMode: ObjectLock.Mode?, lockWindowDays: Int, keyring: TierKeyring) throws -> JSONValue {
        let tier = try onlineTier()
        let configured = try tier.command("setup", settings)
        let key = try onlineKey(tier, keyring: keyring, create: true)
        var selfTest = "not asked (no --lock)"
        if let lockMode {
            selfTest = try onlineLockSelfTest(tier, mode: lockMode)
        }
        if try onlineBucket(tier) == nil {
            let description = OnlineBucketDescription(created: Date(), server: try store().configuration.id,
                                                      lockMode: lockMode?.rawValue ?? "none", lockWindowDays: lockWindowDays)
            try JSONCoding.encode(description, pretty: true).withUnsafeBytes { _ = try tier.putObject(OnlineLayout.bucketFile, $0) }
        }
        var reply: [String: JSONValue] = ["tier": configured, "key_fingerprint": .string(key.fingerprint), "lock_self_test": .string(selfTest)]
        reply["lock_mode"] = .string(lockMode?.rawValue ?? "none")
        return .object(reply)
    }

    /// Writes a locked object and requires the server to refuse deleting its version.
    func onlineLockSelfTest(_ tier: TierProviderHandle, mode: ObjectLock.Mode) throws -> String {
        let key = "dpm/selftest/lock-\(UUID().uuidString.lowercased())"
        // A GOVERNANCE lock for the test whatever the mode, so it can be cleaned up.
        let lock = ObjectLock(retainUntil: Date().addingTimeInterval(86_400), lockMode: .governance)
        let put: ObjectPutReply
        do {
            put = try Array("dpm object lock self-test\n".utf8).withUnsafeBytes { try tier.putObject(key, $0, lock: lock) }
        } catch let error as HostError {
            throw HostError(.invalid, "the bucket refused a locked object (\(error.message)); object lock must be enabled when the bucket is "
                + "created (for example `aws s3api create-bucket --object-lock-enabled-for-bucket`), or set up without --lock")
        }
        guard let version = put.versionId, !version.isEmpty else {
            throw HostError(.invalid, "the bucket kept a locked object without a version id: it is not versioned, so object lock cannot work; "
                + "create the bucket with object lock enabled")
        }
        do {
            try tier.deleteObject(key, versionId: version)
        } catch let error as HostError where error.code == .locked {
            try? tier.deleteObject(key, versionId: version, bypassGovernance: true)
            return "passed: deleting a locked version was refused (\(mode.rawValue) locks will be used)"
        }
        throw HostError(.invalid, "the bucket deleted a locked object version: it does not enforce object lock, so copies would not be immutable; "
            + "use a server that does, or set up without --lock")
    }

    // MARK: Sync

    /// Copies the newest healthy disk point of a data source online, uploading only the
    /// chunks the bucket lacks.
    public func syncOnline(_ name: String, keyring: TierKeyring? = nil, throttle: Throttle? = nil, retentionDays: Int? = nil,
                           onProgress: ((UInt64, UInt64) -> Void)? = nil, job existingJob: Int64? = nil) throws -> OnlineSyncReport {
        let source = try knownDataSource(name)
        let catalog = try catalog()
        let job = try existingJob ?? catalog.createJob(kind: "online-copy", datasource: source.id)
        do {
            let tier = try onlineTier()
            guard let bucket = try onlineBucket(tier) else {
                throw HostError(.invalid, "the online tier is not set up; run `dpm online setup` first")
            }
            let key = try onlineKey(tier, keyring: keyring ?? self.keyring(), create: false)
            guard let point = try catalog.latestRecoveryPoint(datasource: source.id) else {
                throw HostError(.notFound, "\(source.name) has no healthy disk recovery point to copy online; back it up first")
            }
            let existing = try catalog.tierCopies(datasource: source.id, tier: Self.onlineTierID)
            if let copy = existing.first(where: { $0.rpId == point.id }) {
                let report = OnlineSyncReport(copy: copy, upload: OnlineUploader.Report(), alreadyOnline: true)
                try catalog.finishJob(job, state: "succeeded", message: "\(point.id) is already online")
                return report
            }
            let group = try catalog.groupName(ofDataSource: source.id).flatMap { try catalog.group($0) }
            let now = Date()
            let today = existing.filter { Calendar.current.isDate($0.created, inSameDayAs: now) }.count
            guard today < GroupEditor.maxOnlineCopiesPerDay else {
                throw HostError(.invalid, "rule online-copies-per-day: \(source.name) already has \(today) online copies today; "
                    + "at most \(GroupEditor.maxOnlineCopiesPerDay) a day are allowed")
            }
            guard existing.count < GroupEditor.maxOnlinePoints else {
                throw HostError(.invalid, "rule online-points-max: \(source.name) has \(existing.count) online recovery points, the most allowed; "
                    + "shorten its online retention")
            }
            let expires = OnlineRetention(group: group, retentionDays: retentionDays).expiry(of: now, earlier: existing.map(\.created))
            let uploader = OnlineUploader(store: try store(create: false), catalog: catalog, tier: tier, key: key)
            uploader.onProgress = jobProgress(job, catalog: catalog, forwardingTo: onProgress)
            let lock = try FileLock.acquire(dataDirectory.locksDirectory + "/store.lock", .shared, wait: true)
            defer { withExtendedLifetime(lock) {} }
            let (_, report) = try uploader.upload(point: point, source: source, options: .init(
                lock: ObjectLock.Mode(rawValue: bucket.lockMode), lockWindowDays: bucket.lockWindowDays, expires: expires, throttle: throttle))
            let manifestKey = OnlineLayout.manifest(datasource: source.id, rp: point.id)
            let copy = TierCopyRecord(tier: Self.onlineTierID, name: manifestKey, datasourceId: source.id, rpId: point.id, time: point.time,
                                      created: now, expires: expires, bytes: report.bytesSent, location: manifestKey, volumes: nil, point: point,
                                      keyFingerprint: key.fingerprint)
            try catalog.insert(copy)
            let result = OnlineSyncReport(copy: copy, upload: report, alreadyOnline: false)
            try catalog.finishJob(job, state: "succeeded", message: "\(point.id) online: \(report.chunksUploaded) chunks sent, "
                                  + "\(report.chunksAlreadyOnline) already there", result: String(decoding: (try? JSONCoding.encode(result)) ?? Data(), as: UTF8.self))
            return result
        } catch {
            try? catalog.finishJob(job, state: (error as? HostError)?.code == .cancelled ? "cancelled" : "failed", message: String(describing: error))
            throw error
        }
    }

    // MARK: Listing, attach, recovery

    /// The points the bucket holds (its manifests, opened with the key), newest last.
    public func onlinePoints(keyring: TierKeyring? = nil) throws -> [OnlineManifest] {
        let tier = try onlineTier()
        let key = try onlineKey(tier, keyring: keyring ?? self.keyring(), create: false)
        let sealer = try OnlineSealer(key: key)
        var manifests: [OnlineManifest] = []
        for entry in try tier.listAllObjects(prefix: OnlineLayout.manifestsPrefix) where entry.key.hasSuffix(".json") {
            let sealed = try tier.getObject(entry.key)
            let plain = try sealed.withUnsafeBytes { try sealer.open($0, key: entry.key) }
            manifests.append(try JSONCoding.decode(OnlineManifest.self, from: Data(plain)))
        }
        return manifests.sorted { ($0.point.time, $0.point.id) < ($1.point.time, $1.point.id) }
    }

    /// Disaster recovery on a new server: records every point of the bucket (and the data
    /// sources they belong to) in this catalog, and which chunks the bucket holds.
    public func onlineAttach(keyring: TierKeyring? = nil) throws -> [TierCopyRecord] {
        let tier = try onlineTier()
        let catalog = try catalog()
        var recorded: [TierCopyRecord] = []
        for manifest in try onlinePoints(keyring: keyring) {
            if try catalog.dataSource(manifest.datasource.id) == nil { try catalog.upsert(manifest.datasource) }
            let key = OnlineLayout.manifest(datasource: manifest.datasource.id, rp: manifest.point.id)
            let copy = TierCopyRecord(tier: Self.onlineTierID, name: key, datasourceId: manifest.datasource.id, rpId: manifest.point.id,
                                      time: manifest.point.time, created: manifest.created, expires: manifest.expires, bytes: 0,
                                      location: key, volumes: nil, point: manifest.point, keyFingerprint: nil)
            try catalog.insert(copy)
            recorded.append(copy)
        }
        for entry in try tier.listAllObjects(prefix: "dpm/chunks/") {
            guard let name = OnlineLayout.chunkName(ofKey: entry.key), try catalog.onlineChunk(name.hex) == nil else { continue }
            try catalog.recordOnlineChunk(OnlineChunkRecord(name: name.hex, digest: nil, bytes: entry.bytes, versionId: entry.versionId,
                                                            retainUntil: nil, uploaded: entry.modified ?? Date()))
        }
        return recorded
    }

    /// A reader of an online point that fetches only the chunks a recovery touches.
    func onlineReader(_ copy: TierCopyRecord, keyring: TierKeyring, counter: OnlineReadCounter) throws -> RecoveryPointReader {
        let tier = try onlineTier()
        let key = try onlineKey(tier, keyring: keyring, create: false)
        let sealer = try OnlineSealer(key: key)
        let indexKey = OnlineLayout.index(datasource: copy.datasourceId, rp: copy.rpId)
        let sealed: Data
        do {
            sealed = try tier.getObject(indexKey)
        } catch let error as HostError where error.code == .notFound {
            throw HostError(.corrupt, "the online copy of \(copy.rpId) lacks its index (\(indexKey))")
        }
        counter.add(sealed.count)
        let bytes = try sealed.withUnsafeBytes { try sealer.open($0, key: indexKey) }
        let index = try RecoveryPointIndex.decode(bytes, what: indexKey)
        let workers = max(2, min(8, 2 * ProcessInfo.processInfo.activeProcessorCount))
        let sources = try (0..<workers).map { _ in try OnlineChunkSource(tier: tier, key: key, counter: counter) }
        // Read-ahead only for a real stream of reads: a needless read here is a request.
        return try RecoveryPointReader(index: index, record: copy.point, sources: sources, readAheadAfter: 4)
    }
}

/// When an online copy expires: its daily retention, or longer when it is the first copy of
/// its week, month or year and the policy keeps those longer.
struct OnlineRetention {
    var days: Int
    var weeks: Int?
    var months: Int?
    var years: Int?

    init(group: ProtectionGroup?, retentionDays: Int?) {
        days = retentionDays ?? group?.onlineRetentionDays ?? 30
        weeks = group?.onlineWeeks
        months = group?.onlineMonths
        years = group?.onlineYears
    }

    func expiry(of time: Date, earlier: [Date]) -> Date {
        let calendar = Calendar(identifier: .iso8601)
        func first(_ component: Calendar.Component) -> Bool {
            !earlier.contains { calendar.isDate($0, equalTo: time, toGranularity: component) }
        }
        var expiry = time.addingTimeInterval(Double(days) * 86_400)
        if let weeks, first(.weekOfYear) { expiry = max(expiry, calendar.date(byAdding: .day, value: 7 * weeks, to: time) ?? expiry) }
        if let months, first(.month) { expiry = max(expiry, calendar.date(byAdding: .month, value: months, to: time) ?? expiry) }
        if let years, first(.year) { expiry = max(expiry, calendar.date(byAdding: .year, value: years, to: time) ?? expiry) }
        return expiry
    }
}

// MARK: Maintenance

extension ProtectionService {
    public struct OnlineVerifyReport: Codable, Sendable {
        public var pointsChecked = 0
        public var chunksChecked = 0
        public var chunksDownloaded = 0
        public var damaged: [String] = []
    }

    /// Expires online points past their retention, then (unless `expireOnly`) deletes the
    /// versions of chunks no point uses, older than `grace` and no longer locked.
    public func onlineMaintenance(grace: TimeInterval, expireOnly: Bool = false, keyring: TierKeyring? = nil) throws -> JSONValue {
        let tier = try onlineTier()
        guard let bucket = try onlineBucket(tier) else { throw HostError(.invalid, "the online tier is not set up; run `dpm online setup` first") }
        let key = expireOnly ? nil : try onlineKey(tier, keyring: keyring ?? self.keyring(), create: false)
        let collector = try OnlineCollector(tier: tier, catalog: try catalog(), key: key)
        var result = OnlineCollector.Result()
        _ = try collector.expire(now: Date(), result: &result)
        if !expireOnly {
            try collector.collect(grace: grace, now: Date(), lock: ObjectLock.Mode(rawValue: bucket.lockMode), windowDays: bucket.lockWindowDays,
                                  result: &result)
        }
        return try JSONCoding.toJSON(result)
    }

    /// Checks that every chunk of every online point (or of one data source's) is in the
    /// bucket; `deep` downloads each and checks its content against its name.
    public func onlineVerify(_ name: String?, deep: Bool, keyring: TierKeyring? = nil) throws -> OnlineVerifyReport {
        let tier = try onlineTier()
        let key = try onlineKey(tier, keyring: keyring ?? self.keyring(), create: false)
        let sealer = try OnlineSealer(key: key)
        let source = try name.map { try knownDataSource($0) }
        let present = Set(try tier.listAllObjects(prefix: "dpm/chunks/").compactMap { OnlineLayout.chunkName(ofKey: $0.key) })
        var report = OnlineVerifyReport()
        var checked = Set<ChunkDigest>()
        for manifest in try onlinePoints(keyring: keyring) where source == nil || manifest.datasource.id == source?.id {
            report.pointsChecked += 1
            let sealed = try tier.getObject(manifest.indexKey)
            let index = try RecoveryPointIndex.decode(try sealed.withUnsafeBytes { try sealer.open($0, key: manifest.indexKey) }, what: manifest.indexKey)
            var lengths: [ChunkDigest: Int] = [:]
            for stream in index.streams { for entry in stream.entries where entry.flag == .data { lengths[entry.digest] = Int(entry.length) } }
            for (name, length) in lengths {
                report.chunksChecked += 1
                guard present.contains(name) else {
                    report.damaged.append("\(manifest.datasource.name) \(manifest.point.id): chunk \(name.hex) is missing")
                    continue
                }
                guard deep, checked.insert(name).inserted else { continue }
                var plain = [UInt8](repeating: 0, count: length)
                let object = try tier.getObject(OnlineLayout.chunk(name))
                report.chunksDownloaded += 1
                do {
                    try object.withUnsafeBytes { raw in
                        try plain.withUnsafeMutableBytes { try sealer.openChunk(raw, name: name, key: OnlineLayout.chunk(name), into: $0) }
                    }
                } catch {
                    report.damaged.append("\(manifest.datasource.name) \(manifest.point.id): \(error)")
                }
            }
        }
        return report
    }
}
