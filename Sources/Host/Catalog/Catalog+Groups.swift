import Foundation
import PluginAPI

extension Catalog {
    // MARK: Protection groups

    public func groups() throws -> [ProtectionGroup] {
        try database.query("SELECT policy FROM groups ORDER BY name").map { row in
            try decodeGroup(row[0].string ?? "")
        }
    }

    public func group(_ name: String) throws -> ProtectionGroup? {
        try database.query("SELECT policy FROM groups WHERE name = ?", [.text(name)]).first.map { try decodeGroup($0[0].string ?? "") }
    }

    func decodeGroup(_ text: String) throws -> ProtectionGroup {
        do {
            return try JSONCoding.decode(ProtectionGroup.self, from: Data(text.utf8))
        } catch {
            throw HostError(.corrupt, "catalog \(database.path): a protection group's policy is damaged", cause: error)
        }
    }

    /// Creates or replaces a group and its membership, in one transaction.
    public func save(_ group: ProtectionGroup) throws {
        let policy = String(decoding: try JSONCoding.encode(group), as: UTF8.self)
        try database.transaction {
            try database.query("""
                INSERT INTO groups(name, policy, created, modified) VALUES(?,?,?,?)
                ON CONFLICT(name) DO UPDATE SET policy = excluded.policy, modified = excluded.modified
                """, [.text(group.name), .text(policy), .text(CatalogTime.string(group.created)), .text(CatalogTime.string(group.modified))])
            try database.query("DELETE FROM group_members WHERE group_name = ?", [.text(group.name)])
            for member in group.members {
                try database.query("INSERT INTO group_members(datasource_id, group_name) VALUES(?,?)", [.text(member), .text(group.name)])
            }
        }
    }

    public func deleteGroup(_ name: String) throws {
        try database.transaction {
            try database.query("DELETE FROM group_members WHERE group_name = ?", [.text(name)])
            try database.query("DELETE FROM groups WHERE name = ?", [.text(name)])
        }
    }

    /// The group a data source belongs to.
    public func groupName(ofDataSource id: String) throws -> String? {
        try database.query("SELECT group_name FROM group_members WHERE datasource_id = ?", [.text(id)]).first?[0].string
    }

    public func dataSourcesWithRecoveryPoints() throws -> Set<String> {
        Set(try database.query("SELECT DISTINCT datasource_id FROM recovery_points").compactMap { $0[0].string })
    }

    /// The host of every data source that has one recorded (the scheduler's per-host limit).
    public func dataSourceHosts() throws -> [String: String] {
        var hosts: [String: String] = [:]
        for row in try database.query("SELECT id, host FROM datasources WHERE host IS NOT NULL") {
            if let id = row[0].string, let host = row[1].string { hosts[id] = host }
        }
        return hosts
    }

    // MARK: Consistency

    public func setConsistent(_ datasource: String, _ consistent: Bool) throws {
        try database.query("UPDATE datasources SET consistent = ? WHERE id = ?", [.integer(consistent ? 1 : 0), .text(datasource)])
    }

    public func inconsistentDataSources() throws -> Set<String> {
        Set(try database.query("SELECT id FROM datasources WHERE consistent = 0").compactMap { $0[0].string })
    }

    // MARK: The scheduler's memory

    /// What the scheduler remembers of one job key: the last slot it ran (or skipped), and
    /// its retries.
    public struct ScheduleState: Sendable, Equatable {
        public var lastSlot: Date?
        public var attempts: Int
        public var retryAt: Date?

        public init(lastSlot: Date? = nil, attempts: Int = 0, retryAt: Date? = nil) {
            self.lastSlot = lastSlot; self.attempts = attempts; self.retryAt = retryAt
        }
    }

    public func scheduleStates() throws -> [String: ScheduleState] {
        var states: [String: ScheduleState] = [:]
        for row in try database.query("SELECT key, last_slot, attempts, retry_at FROM schedule_state") {
            states[row[0].string ?? ""] = ScheduleState(lastSlot: CatalogTime.date(row[1].string), attempts: Int(row[2].int ?? 0),
                                                        retryAt: CatalogTime.date(row[3].string))
        }
        return states
    }

    public func setScheduleState(_ key: String, _ state: ScheduleState) throws {
        try database.query("""
            INSERT INTO schedule_state(key, last_slot, attempts, retry_at) VALUES(?,?,?,?)
            ON CONFLICT(key) DO UPDATE SET last_slot = excluded.last_slot, attempts = excluded.attempts, retry_at = excluded.retry_at
            """, [.text(key), state.lastSlot.map { .text(CatalogTime.string($0)) } ?? .null, .integer(Int64(state.attempts)),
                  state.retryAt.map { .text(CatalogTime.string($0)) } ?? .null])
    }
}
