import Foundation

// The JSON messages of dpm_plugin.h, as Swift types. Field names here are camelCase and
// travel as snake_case (see `JSONCoding`). Unknown fields are ignored when decoding, so
// both sides can add optional fields without breaking the other.

/// One thing a workload provider can protect: a VM, a database.
public struct DataSourceDescription: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var kind: String
    public var size: UInt64
    public var details: JSONValue?

    public init(id: String, name: String, kind: String, size: UInt64, details: JSONValue? = nil) {
        self.id = id; self.name = name; self.kind = kind; self.size = size; self.details = details
    }
}

/// How a backup moves data (behaviour 3): a full copy, the changes since the previous
/// point, or an express full (changes only, but a consistent full point).
public enum BackupMode: String, Codable, Sendable, CaseIterable {
    case full
    case incremental
    case expressFull = "express-full"
}

/// How consistent a recovery point is, from best to worst.
public enum Consistency: String, Codable, Sendable, CaseIterable {
    case application
    case filesystem
    case crash
}

public enum StreamKind: String, Codable, Sendable {
    /// A block device: fixed-size chunks, random access, allocation maps.
    case block
    /// A byte stream such as a database dump: content-defined chunks.
    case file
}

public struct SnapshotRequest: Codable, Sendable {
    public var datasource: String
    public var mode: BackupMode
    public var previousToken: String?
    public var options: JSONValue?

    public init(datasource: String, mode: BackupMode, previousToken: String? = nil, options: JSONValue? = nil) {
        self.datasource = datasource; self.mode = mode; self.previousToken = previousToken; self.options = options
    }
}

public struct StreamDescription: Codable, Equatable, Sendable {
    public var name: String
    public var kind: StreamKind
    public var size: UInt64

    public init(name: String, kind: StreamKind, size: UInt64) {
        self.name = name; self.kind = kind; self.size = size
    }
}

/// What a workload provider reports about a snapshot it prepared.
public struct SnapshotDescription: Codable, Sendable {
    public var datasource: String
    public var consistency: Consistency
    public var reason: String
    public var pauseMs: Int
    public var streams: [StreamDescription]
    public var metadata: JSONValue?

    public init(datasource: String, consistency: Consistency, reason: String, pauseMs: Int,
                streams: [StreamDescription], metadata: JSONValue? = nil) {
        self.datasource = datasource; self.consistency = consistency; self.reason = reason
        self.pauseMs = pauseMs; self.streams = streams; self.metadata = metadata
    }
}

public struct SnapshotFinish: Codable, Sendable {
    /// The change-tracking token for the next incremental, if the provider tracks changes.
    public var token: String?
    public var notes: [String]?

    public init(token: String? = nil, notes: [String]? = nil) {
        self.token = token; self.notes = notes
    }
}

/// One range of a stream, as the packed `dpm_extent` record.
public struct Extent: Equatable, Sendable, Codable {
    public enum Flag: UInt32, Sendable, Codable {
        case data = 0, zero = 1, excluded = 2
    }

    public var offset: UInt64
    public var length: UInt64
    public var flag: Flag

    public init(offset: UInt64, length: UInt64, flag: Flag = .data) {
        self.offset = offset; self.length = length; self.flag = flag
    }

    public var end: UInt64 { offset + length }

    /// The size of one packed record.
    public static let packedSize = 24

    /// Packs extents as `dpm_extent` records (little-endian, 24 bytes each).
    public static func pack(_ extents: [Extent]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(extents.count * packedSize)
        for extent in extents {
            withUnsafeBytes(of: extent.offset.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: extent.length.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: extent.flag.rawValue.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: UInt32(0)) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// Unpacks `dpm_extent` records; refuses a ragged buffer or an unknown flag.
    public static func unpack(_ bytes: [UInt8]) throws -> [Extent] {
        guard bytes.count % packedSize == 0 else {
            throw PluginError(.corrupt, "extent list of \(bytes.count) bytes is not a multiple of \(packedSize)")
        }
        var extents = [Extent]()
        extents.reserveCapacity(bytes.count / packedSize)
        var position = 0
        func read<T: FixedWidthInteger>(_: T.Type) -> T {
            var value: T = 0
            withUnsafeMutableBytes(of: &value) { raw in
                for index in 0..<MemoryLayout<T>.size { raw[index] = bytes[position + index] }
            }
            position += MemoryLayout<T>.size
            return T(littleEndian: value)
        }
        while position < bytes.count {
            let offset = read(UInt64.self)
            let length = read(UInt64.self)
            let rawFlag = read(UInt32.self)
            _ = read(UInt32.self)
            guard let flag = Flag(rawValue: rawFlag) else {
                throw PluginError(.corrupt, "extent at \(offset) has unknown flag \(rawFlag)")
            }
            extents.append(Extent(offset: offset, length: length, flag: flag))
        }
        return extents
    }
}

public enum RestoreTarget: String, Codable, Sendable {
    case original
    case alternate
    case copyDisks = "copy-disks"
}

public struct RestoreRequest: Codable, Sendable {
    public var datasource: String
    public var target: RestoreTarget
    public var directory: String?
    public var format: String?
    public var options: JSONValue?

    public init(datasource: String, target: RestoreTarget, directory: String? = nil, format: String? = nil,
                options: JSONValue? = nil) {
        self.datasource = datasource; self.target = target; self.directory = directory
        self.format = format; self.options = options
    }
}

/// The recovery point a restore, browse or extract call works on (`host->rp_manifest`).
public struct RecoveryPointManifest: Codable, Sendable {
    public struct Stream: Codable, Sendable {
        public var index: Int
        public var name: String
        public var kind: StreamKind
        public var size: UInt64

        public init(index: Int, name: String, kind: StreamKind, size: UInt64) {
            self.index = index; self.name = name; self.kind = kind; self.size = size
        }
    }

    public var datasource: String
    public var rp: String
    public var time: Date
    public var kind: BackupMode
    public var consistency: Consistency
    public var metadata: JSONValue?
    public var streams: [Stream]

    public init(datasource: String, rp: String, time: Date, kind: BackupMode, consistency: Consistency,
                metadata: JSONValue?, streams: [Stream]) {
        self.datasource = datasource; self.rp = rp; self.time = time; self.kind = kind
        self.consistency = consistency; self.metadata = metadata; self.streams = streams
    }
}

public struct BrowseRequest: Codable, Sendable {
    public var path: String
    public init(path: String) { self.path = path }
}

public struct BrowseEntry: Codable, Sendable, Equatable {
    public var name: String
    public var type: String
    public var size: UInt64
    public var mtime: Date?
    public init(name: String, type: String, size: UInt64, mtime: Date? = nil) {
        self.name = name; self.type = type; self.size = size; self.mtime = mtime
    }
}

public struct BrowseReply: Codable, Sendable {
    public var entries: [BrowseEntry]
    public init(entries: [BrowseEntry]) { self.entries = entries }
}

public struct ExtractRequest: Codable, Sendable {
    public var items: [String]
    public var directory: String
    public init(items: [String], directory: String) { self.items = items; self.directory = directory }
}

/// A provider-specific administrative request (`command`), e.g. {"verb":"vm.add","args":{…}}.
public struct CommandRequest: Codable, Sendable {
    public var verb: String
    public var args: JSONValue?
    public init(verb: String, args: JSONValue? = nil) { self.verb = verb; self.args = args }
}

// MARK: Tier messages

/// The request of `store_begin`: one archive of one recovery point for a long-term tier.
///
/// The archive's bytes (written with `store_write`) are a POSIX pax archive the host
/// produces (see the host's `TierArchiveFormat`); a tier keeps them as they are and
/// `read` returns exactly those bytes. Fields after `size` are optional hints of policy;
/// a tier ignores those it has no use for.
public struct ArchiveRequest: Codable, Sendable {
    public var name: String
    public var datasource: String
    public var rp: String
    public var time: Date
    public var retentionDays: Int
    public var size: UInt64?
    /// When the copy may be expired (time of the copy + retention).
    public var expires: Date?
    /// The data source's display name and its protection group.
    public var datasourceName: String?
    public var group: String?
    /// Tape: the media pool (DPM: one per protection group), the library and drives to
    /// use (nil: the first library, any drive), and whether data sources of several groups
    /// may share a tape (co-location).
    public var pool: String?
    public var library: String?
    public var drives: [Int]?
    public var colocate: Bool?
    /// How the copies recur ("daily", "weekly", …): a standalone drive appends daily
    /// copies to the same tape until it is full.
    public var frequency: String?
    /// The host's encryption descriptor for this archive, nil when it is not encrypted:
    /// {"key_fingerprint":"hex","wrapped_key":{…}}. Opaque to the tier, which keeps it (a
    /// tape in its label), never mixes archives of different fingerprints (or encrypted
    /// with unencrypted) on one medium, and returns it with the archive.
    public var encryption: JSONValue?
    /// The host's description of the point (kind, consistency, provider, sizes); opaque to
    /// the tier, kept in its catalog and returned by `list` and `recatalog`.
    public var summary: JSONValue?

    public init(name: String, datasource: String, rp: String, time: Date, retentionDays: Int, size: UInt64? = nil) {
        self.name = name; self.datasource = datasource; self.rp = rp; self.time = time
        self.retentionDays = retentionDays; self.size = size
    }
}

/// One archive as a tier describes it (`store_finish`, `list`, `read_begin`).
public struct ArchiveDescription: Codable, Sendable, Equatable {
    public var name: String
    public var datasource: String
    public var rp: String
    public var time: Date
    public var expires: Date
    public var bytes: UInt64
    /// Where it is, for people: "A00001L8 file 5 + A00002L8 file 1", an object key.
    public var location: String
    /// Where it is, for programs: one entry per medium it occupies, in order
    /// ({"medium":"A00001L8","file":5,"bytes":N,"sequence":1} for tape).
    public var volumes: [JSONValue]?
    /// What the request carried, handed back.
    public var datasourceName: String?
    public var encryption: JSONValue?
    public var summary: JSONValue?

    public init(name: String, datasource: String, rp: String, time: Date, expires: Date, bytes: UInt64, location: String) {
        self.name = name; self.datasource = datasource; self.rp = rp; self.time = time
        self.expires = expires; self.bytes = bytes; self.location = location
    }
}

public struct ArchiveList: Codable, Sendable {
    public var archives: [ArchiveDescription]
    public init(archives: [ArchiveDescription]) { self.archives = archives }
}

public struct ArchiveFilter: Codable, Sendable {
    public var datasource: String?
    public init(datasource: String? = nil) { self.datasource = datasource }
}

public struct ExpireRequest: Codable, Sendable {
    public var now: Date
    public init(now: Date) { self.now = now }
}

public struct ExpireReply: Codable, Sendable {
    public var expired: [String]
    public init(expired: [String]) { self.expired = expired }
}

public struct ReadArchiveRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

// MARK: Object messages (ABI 1.1)

/// How an object is locked (S3 Object Lock): GOVERNANCE can be lifted by privileged
/// credentials, COMPLIANCE by no one before `retainUntil`.
public struct ObjectLock: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable { case governance, compliance }
    public var retainUntil: Date
    public var lockMode: Mode

    public init(retainUntil: Date, lockMode: Mode) {
        self.retainUntil = retainUntil
        self.lockMode = lockMode
    }
}

/// The reply of `object_put`.
public struct ObjectPutReply: Codable, Sendable, Equatable {
    public var key: String
    public var versionId: String?
    public var etag: String?
    public var bytes: UInt64

    public init(key: String, versionId: String?, etag: String?, bytes: UInt64) {
        self.key = key; self.versionId = versionId; self.etag = etag; self.bytes = bytes
    }
}

public struct ObjectListRequest: Codable, Sendable {
    public var prefix: String
    public var versions: Bool?
    public var continuation: String?

    public init(prefix: String, versions: Bool = false, continuation: String? = nil) {
        self.prefix = prefix; self.versions = versions; self.continuation = continuation
    }
}

public struct ObjectEntry: Codable, Sendable, Equatable {
    public var key: String
    public var bytes: UInt64
    public var versionId: String?
    public var latest: Bool?
    public var deleteMarker: Bool?
    public var modified: Date?

    public init(key: String, bytes: UInt64, versionId: String? = nil, latest: Bool? = nil, deleteMarker: Bool? = nil, modified: Date? = nil) {
        self.key = key; self.bytes = bytes; self.versionId = versionId; self.latest = latest
        self.deleteMarker = deleteMarker; self.modified = modified
    }
}

public struct ObjectListReply: Codable, Sendable {
    public var objects: [ObjectEntry]
    /// Where the next page starts; nil when the listing is complete.
    public var continuation: String?

    public init(objects: [ObjectEntry], continuation: String?) {
        self.objects = objects
        self.continuation = continuation
    }
}
