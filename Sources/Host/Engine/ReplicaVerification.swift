import Foundation

/// The initial replica's check, and what it found.
///
/// It runs once the new point's chunks are durable (published with syncfs) and its catalog
/// row is written as `unverified`: the Verifier re-reads every chunk the point references from
/// storage (StorageRead: O_DIRECT, not the page cache that the backup's writes filled),
/// decodes and re-hashes it against its digest, and records the outcome as `dpm verify` does:
/// the point becomes `verified`, or `damaged` with its damaged chunks quarantined. A crash
/// before the check ends leaves the point `unverified` until `dpm verify` checks it.
public struct ReplicaVerification: Codable, Sendable {
    /// Distinct chunks of the point re-read from storage, decoded and re-hashed.
    public var chunksChecked = 0
    /// Of those, the chunks written for the point (by its backup or import); the others it
    /// shares with earlier points.
    public var chunksNew = 0
    /// The plain bytes of those chunks, re-hashed.
    public var bytesChecked: UInt64 = 0
    /// How the chunk files were read from storage.
    public var reads = StorageReadCounts()
    /// What the check found damaged; the point is then marked damaged.
    public var damaged: [Verifier.Damage] = []
    /// What was checked and what was found, in one sentence.
    public var summary = ""

    public var passed: Bool { damaged.isEmpty }

    /// The report line: "verified: SUMMARY", or "VERIFICATION FAILED: SUMMARY".
    public var outcome: String { (passed ? "verified: " : "VERIFICATION FAILED: ") + summary }

    /// Checks `point` and records the outcome in the catalog.
    /// - Parameter chunksNew: how many chunks the backup (or import) that made the point wrote.
    static func run(point: RecoveryPointRecord, chunksNew: Int, store: ChunkStore, catalog: Catalog) throws -> ReplicaVerification {
        let result = try Verifier(store: store, catalog: catalog).verify(points: [point])
        var check = ReplicaVerification()
        check.chunksChecked = result.chunksChecked
        check.chunksNew = min(chunksNew, result.chunksChecked)
        check.bytesChecked = result.bytesChecked
        check.reads = result.reads
        check.damaged = result.damaged
        let shared = check.chunksChecked - check.chunksNew
        let which = shared == 0 ? "all \(check.chunksNew) written for it"
            : "the \(check.chunksNew) written for it and \(shared) it shares with earlier points"
        check.summary = "\(check.chunksChecked) chunks (\(ByteFormat.string(check.bytesChecked))) re-read from storage "
            + "\(check.reads.method) once durable, decoded and re-hashed: \(which)"
        if let damage = result.damaged.first {
            check.summary += "; damage found, so recovery point \(point.id) is marked damaged: \(damage.problem)"
        }
        return check
    }
}
