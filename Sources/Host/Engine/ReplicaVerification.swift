import Foundation

/// The initial replica's check, and what it found.
///
/// It runs once the new point's chunks are durable (published with syncfs) and its catalog
/// row is written as `unverified`. The Verifier re-reads every chunk the point references from
/// storage (StorageRead: O_DIRECT, not the page cache that the backup's writes filled):
/// - a chunk the backup wrote is compared with the BlobChecksum (XXH64) taken of its blob as it
///   was written, so the check proves the storage holds exactly the bytes produced, at a
///   fraction of the cost of decoding (the blob came from data whose SHA-256 is its name);
/// - a chunk the point shares with earlier points is decoded and re-hashed, as `dpm verify` does.
/// It records the outcome as `dpm verify` does: the point becomes `verified`, or `damaged` with
/// its damaged chunks quarantined. A crash before the check ends leaves the point `unverified`
/// until `dpm verify` checks it.
public struct ReplicaVerification: Codable, Sendable {
    /// Distinct chunks of the point re-read from storage.
    public var chunksChecked = 0
    /// Of those, the chunks written for the point (by its backup or import): compared with the
    /// checksum of their blob as written.
    public var chunksNew = 0
    /// The others, shared with earlier points: decoded and re-hashed with SHA-256.
    public var chunksShared = 0
    /// The plain bytes of the chunks checked.
    public var bytesChecked: UInt64 = 0
    /// How the chunk files were read from storage, and their bytes.
    public var reads = StorageReadCounts()
    /// What the check found damaged; the point is then marked damaged.
    public var damaged: [Verifier.Damage] = []
    /// What was checked and what was found, in one sentence.
    public var summary = ""

    public var passed: Bool { damaged.isEmpty }

    /// The report line: "verified: SUMMARY", or "VERIFICATION FAILED: SUMMARY".
    public var outcome: String { (passed ? "verified: " : "VERIFICATION FAILED: ") + summary }

    /// Checks `point` and records the outcome in the catalog.
    /// - Parameter written: the blobs the backup (or import) that made the point wrote, with
    ///   their checksums (ChunkCommitBatch.written).
    static func run(point: RecoveryPointRecord, written: [ChunkDigest: WrittenBlob], store: ChunkStore, catalog: Catalog) throws -> ReplicaVerification {
        let result = try Verifier(store: store, catalog: catalog).verify(points: [point], written: written)
        var check = ReplicaVerification()
        check.chunksChecked = result.chunksChecked
        check.chunksNew = result.chunksCompared
        check.chunksShared = result.chunksChecked - result.chunksCompared
        check.bytesChecked = result.bytesChecked
        check.reads = result.reads
        check.damaged = result.damaged
        var what: [String] = []
        if check.chunksNew > 0 { what.append("the \(check.chunksNew) written for it compared with a checksum (XXH64) of each blob taken as it was written") }
        if check.chunksShared > 0 { what.append("the \(check.chunksShared) it shares with earlier points decoded and re-hashed (SHA-256)") }
        check.summary = "\(check.chunksChecked) chunks (\(ByteFormat.string(check.reads.bytes)) stored) re-read from storage "
            + "\(check.reads.method) once durable: " + (what.isEmpty ? "none" : what.joined(separator: "; "))
        if let damage = result.damaged.first {
            check.summary += "; damage found, so recovery point \(point.id) is marked damaged: \(damage.problem)"
        }
        return check
    }
}
