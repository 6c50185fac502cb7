import Foundation
import PluginAPI

/// Expiry and garbage collection in the online bucket, by object *version*: on a versioned
/// bucket (which object lock requires) a plain delete only adds a delete marker, so space
/// is freed only by deleting versions.
///
/// - Expiry: a point whose retention has passed loses its manifest first (so it is no
///   longer listed), then its index; a version still locked is left for a later run.
/// - GC, mark and sweep: the names every manifest's index uses are marked; every version
///   of an unmarked chunk is deleted once it is older than the grace period (which also
///   covers a sync in progress, whose manifest is not written yet) and its lock has
///   expired. A refusal because of the lock (`locked`) means "still locked", not a failure.
final class OnlineCollector {
    struct Result: Codable, Sendable {
        var pointsExpired: [String] = []
        var chunksReferenced = 0
        var versionsDeleted = 0
        var bytesFreed: UInt64 = 0
        var versionsStillLocked = 0
        var versionsKeptByGrace = 0
        var locksExtended = 0
    }

    let tier: TierProviderHandle
    let catalog: Catalog
    /// Needed to read manifests and indexes (gc); expiry works without the key.
    let sealer: OnlineSealer?

    init(tier: TierProviderHandle, catalog: Catalog, key: TierKey?) throws {
        self.tier = tier
        self.catalog = catalog
        sealer = try key.map { try OnlineSealer(key: $0) }
    }

    /// Deletes every version of `key`; returns false when some version is still locked.
    func deleteAllVersions(_ key: String, result: inout Result) throws -> Bool {
        var unlocked = true
        for version in try tier.listAllObjects(prefix: key, versions: true) where version.key == key {
            do {
                try tier.deleteObject(key, versionId: version.versionId)
                result.versionsDeleted += 1
                result.bytesFreed += version.bytes
            } catch let error as HostError where error.code == .locked {
                result.versionsStillLocked += 1
                unlocked = false
            }
        }
        return unlocked
    }

    func expire(now: Date, result: inout Result) throws -> [TierCopyRecord] {
        var expired: [TierCopyRecord] = []
        for copy in try catalog.tierCopies(tier: ProtectionService.onlineTierID) where copy.expires <= now {
            let manifest = OnlineLayout.manifest(datasource: copy.datasourceId, rp: copy.rpId)
            let index = OnlineLayout.index(datasource: copy.datasourceId, rp: copy.rpId)
            guard try deleteAllVersions(manifest, result: &result) else { continue }
            _ = try deleteAllVersions(index, result: &result)
            try catalog.deleteTierCopy(tier: copy.tier, name: copy.name)
            result.pointsExpired.append(copy.name)
            expired.append(copy)
        }
        return expired
    }

    /// Maintenance: every chunk a live point uses keeps a lock of at least half the window
    /// (kopia's approach), so old points stay immutable without any new sync touching them.
    func collect(grace: TimeInterval, now: Date, lock: ObjectLock.Mode?, windowDays: Int, result: inout Result) throws {
        guard let sealer else { throw HostError(.internalError, "online gc needs the tier key") }
        var marked = Set<ChunkDigest>()
        for entry in try tier.listAllObjects(prefix: OnlineLayout.manifestsPrefix) where entry.key.hasSuffix(".json") {
            let manifest = try JSONCoding.decode(OnlineManifest.self, from: Data(try tier.getObject(entry.key).withUnsafeBytes { try sealer.open($0, key: entry.key) }))
            let sealed = try tier.getObject(manifest.indexKey)
            let index = try RecoveryPointIndex.decode(try sealed.withUnsafeBytes { try sealer.open($0, key: manifest.indexKey) }, what: manifest.indexKey)
            marked.formUnion(index.dataDigests)
        }
        result.chunksReferenced = marked.count
        if let lock {
            let window = Double(windowDays) * 86_400
            for var chunk in try catalog.allOnlineChunks() {
                guard let name = ChunkDigest(hex: chunk.name), marked.contains(name),
                      (chunk.retainUntil ?? .distantPast) < now.addingTimeInterval(window / 2) else { continue }
                let until = now.addingTimeInterval(window)
                try tier.retainObject(OnlineLayout.chunk(name), versionId: chunk.versionId, lock: ObjectLock(retainUntil: until, lockMode: lock))
                chunk.retainUntil = until
                try catalog.recordOnlineChunk(chunk)
                result.locksExtended += 1
            }
        }
        let cutoff = now.addingTimeInterval(-grace)
        var fullyDeleted: [String: Bool] = [:]
        for version in try tier.listAllObjects(prefix: "dpm/chunks/", versions: true) {
            guard let name = OnlineLayout.chunkName(ofKey: version.key), !marked.contains(name) else { continue }
            if (version.modified ?? now) > cutoff {
                result.versionsKeptByGrace += 1
                fullyDeleted[name.hex] = false
                continue
            }
            do {
                try tier.deleteObject(version.key, versionId: version.versionId)
                result.versionsDeleted += 1
                result.bytesFreed += version.bytes
                if fullyDeleted[name.hex] == nil { fullyDeleted[name.hex] = true }
            } catch let error as HostError where error.code == .locked {
                result.versionsStillLocked += 1
                fullyDeleted[name.hex] = false
            }
        }
        for (name, gone) in fullyDeleted where gone { try catalog.forgetOnlineChunk(name) }
    }
}
