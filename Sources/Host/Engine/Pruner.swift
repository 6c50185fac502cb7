import Foundation

/// Applies each data source's short-term retention: recovery points older than its
/// retention range are removed, but the newest healthy point of a data source is always
/// kept, whatever its age, so pruning alone never leaves a protected source with nothing.
///
/// A point is removed from the catalog first and its index file second, so a crash in
/// between leaves an orphan index (gc removes it), never a row without its index.
public final class Pruner {
    public struct Removal: Codable, Sendable {
        public var rp: String
        public var datasource: String
        public var time: Date
    }

    public struct Result: Codable, Sendable {
        public var removed: [Removal] = []
        public var kept = 0
        public var skipped: [String] = []
        /// Long-term copies whose own retention ended ("TIER NAME"), expired by their tiers.
        public var expiredCopies: [String] = []
    }

    let dataDirectory: DataDirectory
    let store: ChunkStore
    let catalog: Catalog

    public init(dataDirectory: DataDirectory, store: ChunkStore, catalog: Catalog) {
        self.dataDirectory = dataDirectory
        self.store = store
        self.catalog = catalog
    }

    public func prune(now: Date = Date(), dryRun: Bool = false) throws -> Result {
        var result = Result()
        for source in try catalog.dataSources() {
            let lockPath = dataDirectory.dataSourceLock(source.id)
            guard let lock = try FileLock.acquire(lockPath, .exclusive, wait: false) else {
                result.skipped.append("\(source.name): a backup or recovery is running; pruned next time")
                continue
            }
            defer { withExtendedLifetime(lock) {} }
            let points = try catalog.recoveryPoints(datasource: source.id)
            let newestHealthy = points.last { !$0.isDamaged }?.id
            let cutoff = now.addingTimeInterval(-Double(source.retentionDays) * 86_400)
            for point in points {
                guard point.time < cutoff, point.id != newestHealthy else {
                    result.kept += 1
                    continue
                }
                result.removed.append(Removal(rp: point.id, datasource: source.id, time: point.time))
                guard !dryRun else { continue }
                try catalog.deleteRecoveryPoint(point.id)
                unlink(store.directory + "/" + point.indexPath)
            }
        }
        return result
    }
}
