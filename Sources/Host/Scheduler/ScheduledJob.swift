import Foundation

/// The kinds of work the scheduler plans, strongest backup first.
public enum JobKind: String, Codable, Sendable, CaseIterable {
    /// A full backup that re-reads everything and repairs the replica.
    case consistencyCheck = "consistency-check"
    /// The initial full copy of a new member.
    case replica
    /// A consistent full recovery point that moves only changed blocks.
    case expressFull = "express-full"
    /// An incremental synchronisation (which makes a recovery point).
    case sync
    case tapeCopy = "tape-copy"
    case onlineCopy = "online-copy"
    case prune
    case gc
    case verify

    /// Backup kinds act on one data source and supersede weaker ones due at the same time.
    public var isBackup: Bool { [.consistencyCheck, .replica, .expressFull, .sync].contains(self) }

    /// Lower is stronger.
    var strength: Int { JobKind.allCases.firstIndex(of: self) ?? 99 }
}

/// One run the scheduler wants: a kind of work, on a data source (or the whole server),
/// for one slot of its schedule.
public struct ScheduledJob: Hashable, Codable, Sendable, CustomStringConvertible {
    public var kind: JobKind
    /// The data source, or nil for server-wide work (prune, gc, verify).
    public var datasource: String?
    public var group: String?
    /// The schedule time this run satisfies.
    public var slot: Date
    /// Other keys and slots a successful run also satisfies (a weaker backup due at the same time).
    public var satisfies: [String: Date] = [:]

    public init(kind: JobKind, datasource: String?, group: String?, slot: Date) {
        self.kind = kind; self.datasource = datasource; self.group = group; self.slot = slot
    }

    /// The key under which the scheduler remembers this job's last slot.
    public var key: String { ScheduledJob.key(kind, datasource) }

    public static func key(_ kind: JobKind, _ datasource: String?) -> String { "\(kind.rawValue):\(datasource ?? "*")" }

    /// What may not run twice at once: the data source, or the server for server-wide work.
    var lane: String { datasource ?? "*server*" }

    public var description: String {
        "\(kind.rawValue) \(datasource ?? "server") @ \(CatalogTime.string(slot))"
    }
}
