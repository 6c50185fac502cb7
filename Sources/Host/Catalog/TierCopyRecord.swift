import Foundation
import PluginAPI

/// A long-term copy of a recovery point on a tier (tape, online): one row of the catalog's
/// `tier_copies` table.
///
/// The copy is self-contained (see `TierArchiveManifest`), so it outlives the disk point it
/// was made from: `point` keeps that point's description for listing and recovery after
/// the disk point is pruned.
public struct TierCopyRecord: Codable, Sendable, Equatable {
    /// The tier provider's id ("tape-library", "online-tier").
    public var tier: String
    /// The archive's name in the tier, unique there.
    public var name: String
    public var datasourceId: String
    public var rpId: String
    /// The point's snapshot time.
    public var time: Date
    /// When the copy was made, and when its retention ends.
    public var created: Date
    public var expires: Date
    public var bytes: UInt64
    /// Where it is, for people (tapes and file numbers, an object prefix).
    public var location: String
    /// Where it is, for programs, as the tier described it.
    public var volumes: [JSONValue]?
    public var point: RecoveryPointRecord
    /// The tier key's fingerprint when the copy is encrypted.
    public var keyFingerprint: String?
    /// "ok", or "damaged" with `damage` saying what failed.
    public var status = "ok"
    public var damage: String?
}

extension Catalog {
    static let tierCopyColumns = "tier, name, datasource_id, rp_id, time, created, expires, bytes, location, volumes, point, key_fingerprint, status, damage"

    /// Records a copy (or replaces the row of the same tier and name, as a recatalog does).
    public func insert(_ copy: TierCopyRecord) throws {
        let point = String(decoding: try JSONCoding.encode(copy.point), as: UTF8.self)
        let volumes = try copy.volumes.map { String(decoding: try JSONCoding.encode($0), as: UTF8.self) }
        try database.query("INSERT OR REPLACE INTO tier_copies(\(Self.tierCopyColumns)) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
            .text(copy.tier), .text(copy.name), .text(copy.datasourceId), .text(copy.rpId), .text(CatalogTime.string(copy.time)),
            .text(CatalogTime.string(copy.created)), .text(CatalogTime.string(copy.expires)), .integer(Int64(copy.bytes)),
            .text(copy.location), volumes.map { .text($0) } ?? .null, .text(point), copy.keyFingerprint.map { .text($0) } ?? .null,
            .text(copy.status), copy.damage.map { .text($0) } ?? .null,
        ])
    }

    /// The copies of one data source (or of all), oldest first; optionally of one tier.
    public func tierCopies(datasource: String? = nil, tier: String? = nil) throws -> [TierCopyRecord] {
        var conditions: [String] = []
        var parameters: [SQLiteDatabase.Value] = []
        if let datasource { conditions.append("datasource_id = ?"); parameters.append(.text(datasource)) }
        if let tier { conditions.append("tier = ?"); parameters.append(.text(tier)) }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try database.query("SELECT \(Self.tierCopyColumns) FROM tier_copies \(filter) ORDER BY time, created, name", parameters)
            .map(tierCopy)
    }

    public func deleteTierCopy(tier: String, name: String) throws {
        try database.query("DELETE FROM tier_copies WHERE tier = ? AND name = ?", [.text(tier), .text(name)])
    }

    public func markTierCopyDamaged(tier: String, name: String, damage: String) throws {
        try database.query("UPDATE tier_copies SET status = 'damaged', damage = ? WHERE tier = ? AND name = ?",
                           [.text(damage), .text(tier), .text(name)])
    }

    func tierCopy(_ row: [SQLiteDatabase.Value]) throws -> TierCopyRecord {
        do {
            let point = try JSONCoding.decode(RecoveryPointRecord.self, from: Data((row[10].string ?? "").utf8))
            let volumes = try row[9].string.map { try JSONCoding.decode([JSONValue].self, from: Data($0.utf8)) }
            return TierCopyRecord(
                tier: row[0].string ?? "", name: row[1].string ?? "", datasourceId: row[2].string ?? "", rpId: row[3].string ?? "",
                time: CatalogTime.date(row[4].string) ?? Date(timeIntervalSince1970: 0),
                created: CatalogTime.date(row[5].string) ?? Date(timeIntervalSince1970: 0),
                expires: CatalogTime.date(row[6].string) ?? Date(timeIntervalSince1970: 0), bytes: UInt64(row[7].int ?? 0),
                location: row[8].string ?? "", volumes: volumes, point: point, keyFingerprint: row[11].string,
                status: row[12].string ?? "ok", damage: row[13].string)
        } catch {
            throw HostError(.corrupt, "catalog \(database.path): the long-term copy \(row[1].string ?? "?") is damaged; run `dpm tape recatalog`", cause: error)
        }
    }
}
