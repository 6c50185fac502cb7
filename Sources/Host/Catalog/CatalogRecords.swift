import Foundation
import PluginAPI

/// A protected data source as the catalog knows it.
public struct DataSourceRecord: Codable, Sendable, Equatable {
    public var id: String
    public var provider: String
    public var name: String
    public var kind: String
    public var retentionDays: Int
    public var created: Date
    /// The host the data source runs on, when its provider says (the per-host job limit).
    public var host: String?
}

/// How an incremental found what changed.
public enum ChangeSource: String, Codable, Sendable {
    /// Every allocated block was read (a full backup).
    case full
    /// The provider's change tracking named the changed ranges.
    case tracked
    /// No trustworthy change tracking: every allocated block was read and hashed.
    case hashed
}

/// One recovery point row.
public struct RecoveryPointRecord: Codable, Sendable, Equatable {
    public var id: String
    public var datasourceId: String
    public var time: Date
    public var kind: BackupMode
    public var consistency: Consistency
    public var reason: String
    public var pauseMs: Int
    public var logicalBytes: UInt64
    public var bytesRead: UInt64
    public var bytesNew: UInt64
    public var bytesStored: UInt64
    public var durationMs: Int
    public var token: String?
    public var changeSource: ChangeSource
    public var indexPath: String
    /// What is known of the point's health (RecoveryPointStatus): "verified", "unverified",
    /// "ok" or "damaged".
    public var status: String
    public var damage: String?

    public var isDamaged: Bool { status == RecoveryPointStatus.damaged }
}

/// The values of `RecoveryPointRecord.status` (the catalog's `recovery_points.status`).
public enum RecoveryPointStatus {
    /// Complete, and not checked since it was made: the points after the initial replica,
    /// until `dpm verify` checks them.
    public static let ok = "ok"
    /// The initial replica, until its check (every chunk re-read from storage, decoded and
    /// re-hashed) has finished; stays so when the check was interrupted, until `dpm verify`.
    public static let unverified = "unverified"
    /// The last check re-read every chunk from storage and found it intact.
    public static let verified = "verified"
    /// A check found damage, described in `damage`; restores read what is intact.
    public static let damaged = "damaged"
}

/// One job row: a backup, restore, verify … with its progress.
public struct JobRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var datasourceId: String?
    /// queued, running, succeeded, failed or cancelled.
    public var state: String
    public var created: Date
    public var started: Date?
    public var finished: Date?
    public var pid: Int?
    public var progressDone: UInt64
    public var progressTotal: UInt64
    public var message: String?
    public var result: String?
    /// For scheduled jobs: the scheduler's key and slot, and the backup mode.
    public var scheduleKey: String?
    public var slot: Date?
    public var mode: String?
}

/// Timestamps in the catalog: ISO-8601 UTC with milliseconds, which sort as text.
enum CatalogTime {
    static func string(_ date: Date) -> String {
        ISOTime.string(date)
    }

    static func date(_ text: String?) -> Date? {
        guard let text else { return nil }
        return ISOTime.date(text)
    }
}
