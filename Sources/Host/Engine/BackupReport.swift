import Foundation
import PluginAPI

/// What a backup did, for `dpm backup --json` and the job result.
public struct BackupReport: Codable, Sendable {
    public var recoveryPoint: RecoveryPointRecord
    public var datasourceName: String
    public var provider: String
    public var chunksTotal = 0
    /// Chunks read from the data source.
    public var chunksRead = 0
    /// Chunks written to the store.
    public var chunksNew = 0
    /// Chunks read whose content the store already held.
    public var chunksDeduplicated = 0
    /// Chunks change tracking said were unchanged; taken from the previous point unread.
    public var chunksUnchanged = 0
    public var chunksZero = 0
    public var chunksExcluded = 0
    public var notes: [String] = []
    /// Whether the initial replica's check ran and found every chunk intact.
    public var verified = false
    /// What the initial replica's check read and found; nil when no check ran (later backups).
    public var verification: ReplicaVerification?
    /// Time spent on that check, after (and not included in) the point's `duration_ms`.
    public var verifyMs = 0
}

/// Counters the pipeline updates from several threads.
final class BackupCounters: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var bytesRead: UInt64 = 0
    private(set) var bytesNew: UInt64 = 0
    private(set) var bytesStored: UInt64 = 0
    private(set) var chunksRead = 0
    private(set) var chunksNew = 0
    private(set) var chunksDeduplicated = 0
    private(set) var chunksZeroRead = 0
    private(set) var progress: UInt64 = 0

    func read(_ bytes: Int) {
        lock.lock(); bytesRead += UInt64(bytes); chunksRead += 1; lock.unlock()
    }

    func stored(plain: Int, stored: Int) {
        lock.lock(); bytesNew += UInt64(plain); bytesStored += UInt64(stored); chunksNew += 1; lock.unlock()
    }

    func deduplicated() {
        lock.lock(); chunksDeduplicated += 1; lock.unlock()
    }

    func zeroRead() {
        lock.lock(); chunksZeroRead += 1; lock.unlock()
    }

    /// Advances progress and returns the new total.
    func advance(_ bytes: Int) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        progress += UInt64(bytes)
        return progress
    }
}
