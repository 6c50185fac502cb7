import Foundation

/// A protection group (behaviour 7): data sources that share one protection policy.
///
/// Stored as JSON in the catalog's `groups` table; members also in `group_members`, where
/// a data source belongs to at most one group.
public struct ProtectionGroup: Codable, Sendable, Equatable {
    /// How the first full copy (the replica) of a new member is made.
    public enum ReplicaCreation: Codable, Sendable, Equatable {
        /// Right away.
        case now
        /// Once, at a given time.
        case at(Date)
        /// In the server's next off-peak window (setting `scheduler.off_peak`).
        case offPeak
        /// Imported from a folder that `dpm replica export` wrote on removable media.
        case offline(String)
    }

    /// When consistency checks run: only when a member is marked inconsistent, or also daily.
    public enum ConsistencyCheck: Codable, Sendable, Equatable {
        case onlyIfInconsistent
        case daily(minuteOfDay: Int)
    }

    public var name: String
    public var members: [String]
    public var colocate = false
    public var retentionDays = 14
    /// Minutes between incremental syncs, or nil for "just before each recovery point".
    public var syncMinutes: Int? = 15
    /// Minutes after midnight when recovery points are due (with `syncMinutes == nil`, each
    /// is an express full; otherwise every sync makes a recovery point too).
    public var recoveryPointTimes: [Int] = [8 * 60, 12 * 60, 18 * 60]
    /// Minutes after midnight for express full backups.
    public var expressFullTimes: [Int] = [20 * 60]
    public var consistencyCheck: ConsistencyCheck = .onlyIfInconsistent
    public var replicaCreation: ReplicaCreation = .now
    public var online = false
    public var onlineRetentionDays = 30
    /// Minutes after midnight of the daily online copy (when `onlineTimes` is nil).
    public var onlineTime = 21 * 60
    /// Minutes after midnight of the online copies, at most two a day (DPM's limit).
    public var onlineTimes: [Int]?
    /// Online copies kept longer than `onlineRetentionDays`: the first copy of each week,
    /// month and year is kept this many weeks, months and years (nil: not kept longer).
    public var onlineWeeks: Int?
    public var onlineMonths: Int?
    public var onlineYears: Int?

    /// The times of the day's online copies.
    public var onlineCopyTimes: [Int] { onlineTimes ?? [onlineTime] }
    public var tape = false
    public var tapeRetention = TapeRetention(amount: 1, unit: .years)
    public var tapeFrequency = TapeFrequency.weekly
    /// Minutes after midnight of tape copies on their due days.
    public var tapeTime = 23 * 60
    /// The media pool of the group's tapes (nil: the group's name), the library (nil: the
    /// first) and its drives (nil: any).
    public var tapePool: String?
    public var tapeLibrary: String?
    public var tapeDrives: [Int]?
    public var compression = true
    public var encryption = false
    /// The disk space the administrator allocated on the store, if edited in the plan review.
    public var storeAllocationBytes: UInt64?
    public var created = Date()
    public var modified = Date()

    public init(name: String, members: [String]) {
        self.name = name
        self.members = members
    }
}

/// Minutes after midnight, written HH:MM.
public enum ClockTime {
    public static func parse(_ text: String, what: String) throws -> Int {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]),
              (0..<24).contains(hours), (0..<60).contains(minutes) else {
            throw HostError(.usage, "\(what): '\(text)' is not a time of day; write HH:MM, for example 08:00")
        }
        return hours * 60 + minutes
    }

    public static func string(_ minutes: Int) -> String {
        String(format: "%02d:%02d", minutes / 60, minutes % 60)
    }
}
