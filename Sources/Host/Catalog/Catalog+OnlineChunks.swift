import Foundation

/// One chunk known to be in the online bucket: what a sync need not upload again.
public struct OnlineChunkRecord: Sendable, Equatable {
    public var name: String
    /// The chunk's digest in this server's store (nil when learned from the bucket alone).
    public var digest: String?
    public var bytes: UInt64
    public var versionId: String?
    /// Until when its lock holds (nil: not locked).
    public var retainUntil: Date?
    public var uploaded: Date
}

extension Catalog {
    /// The known online chunk of that name, if any.
    public func onlineChunk(_ name: String) throws -> OnlineChunkRecord? {
        try database.query("SELECT name, digest, bytes, version_id, retain_until, uploaded FROM online_chunks WHERE name = ?", [.text(name)])
            .first.map(Self.onlineChunk)
    }

    /// The online chunk holding the store chunk `digest`, if one is known.
    public func onlineChunk(digest: String) throws -> OnlineChunkRecord? {
        try database.query("SELECT name, digest, bytes, version_id, retain_until, uploaded FROM online_chunks WHERE digest = ? LIMIT 1",
                           [.text(digest)]).first.map(Self.onlineChunk)
    }

    public func allOnlineChunks() throws -> [OnlineChunkRecord] {
        try database.query("SELECT name, digest, bytes, version_id, retain_until, uploaded FROM online_chunks").map(Self.onlineChunk)
    }

    /// Records an uploaded chunk (or its extended lock).
    public func recordOnlineChunk(_ chunk: OnlineChunkRecord) throws {
        try database.query("INSERT OR REPLACE INTO online_chunks(name, digest, bytes, version_id, retain_until, uploaded) VALUES(?,?,?,?,?,?)", [
            .text(chunk.name), chunk.digest.map { .text($0) } ?? .null, .integer(Int64(chunk.bytes)), chunk.versionId.map { .text($0) } ?? .null,
            chunk.retainUntil.map { .text(CatalogTime.string($0)) } ?? .null, .text(CatalogTime.string(chunk.uploaded)),
        ])
    }

    public func forgetOnlineChunk(_ name: String) throws {
        try database.query("DELETE FROM online_chunks WHERE name = ?", [.text(name)])
    }

    public func forgetAllOnlineChunks() throws {
        try database.query("DELETE FROM online_chunks")
    }

    static func onlineChunk(_ row: [SQLiteDatabase.Value]) -> OnlineChunkRecord {
        OnlineChunkRecord(name: row[0].string ?? "", digest: row[1].string, bytes: UInt64(row[2].int ?? 0), versionId: row[3].string,
                          retainUntil: CatalogTime.date(row[4].string), uploaded: CatalogTime.date(row[5].string) ?? Date(timeIntervalSince1970: 0))
    }
}
