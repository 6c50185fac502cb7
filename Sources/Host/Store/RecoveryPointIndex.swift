import Foundation
import PluginAPI

/// The on-disk format of one recovery point, `store/points/DS/RP.dpmidx`: an immutable,
/// checksummed index of chunk digests that describes a *full* image of every stream.
///
/// All integers are little-endian. The file is:
///
///     header (64 bytes)
///       0   8  magic "DPMINDX1"
///       8   4  format version = 1
///       12  4  stream count S
///       16  8  manifest offset (always 64)
///       24  8  manifest length M
///       32  8  stream table offset T
///       40  8  entry area offset E
///       48  8  total entry count N
///       56  8  reserved, 0
///     manifest (M bytes of UTF-8 JSON, see `Manifest`), at 64
///     stream table (S records of 48 bytes), at T
///       0   8  stream size in bytes
///       8   8  first entry number (into the entry area)
///       16  8  entry count
///       24  4  chunking: 0 = fixed-size chunks, 1 = content-defined chunks
///       28  4  fixed chunk size (0 for content-defined)
///       32  16 reserved, 0
///     entry area (N records of 40 bytes), at E; a stream's entries are contiguous and in
///     order, and their lengths add up to the stream size
///       0   32 digest (all zeros unless the flag is `data`)
///       32  4  length in bytes of the stream this entry covers
///       36  1  flag: 0 = data (read chunk DIGEST), 1 = zero (reads as zeros, nothing stored),
///                    2 = excluded (page file, swap: restored as zeros)
///       37  3  reserved, 0
///     trailer (32 bytes): SHA-256 of every byte before it
///
/// The areas follow each other without gaps: T = 64 + M, E = T + 48 × S, and the entry
/// area ends where the trailer begins (E + 40 × N = file size − 32). Stream records list
/// their entries in order, together covering all N entries exactly once. For fixed-size
/// chunks every entry but the last is exactly the chunk size, and entry i covers
/// [i × chunk size, …), so a reader finds the entry for any offset by division; for
/// content-defined chunks it adds up lengths once.
///
/// The manifest is a JSON object with these keys (unknown keys must be ignored):
///
///     store_id         the `id` of the store's config.json
///     datasource       the data source's id; datasource_name its display name
///     provider         the workload provider's id, e.g. "hyperv-host"
///     rp               this recovery point's id, e.g. "20261127-013502-3f9a"
///     time             the snapshot time, ISO-8601 UTC with milliseconds ("…T01:35:02.123Z")
///     kind             "full", "incremental" or "express-full" (every point is a full image)
///     consistency      "application", "filesystem" or "crash"; reason says why; pause_ms
///     token            the change-tracking token (optional)
///     parent_rp        the point an incremental was based on (optional)
///     metadata         the provider's own description (for HyperVHost: {"vm": {…disks…}})
///     streams          [{"name", "kind": "block"|"file", "size"}], in the order of the
///                      stream table; record i describes streams[i] and sizes agree
public struct RecoveryPointIndex: Sendable {
    public enum EntryFlag: UInt8, Sendable, Codable {
        case data = 0, zero = 1, excluded = 2
    }

    public struct Entry: Equatable, Sendable {
        public var digest: ChunkDigest
        public var length: UInt32
        public var flag: EntryFlag

        public init(digest: ChunkDigest, length: UInt32, flag: EntryFlag) {
            self.digest = digest; self.length = length; self.flag = flag
        }

        public static func zero(_ length: Int) -> Entry { Entry(digest: .zero, length: UInt32(length), flag: .zero) }
    }

    public enum Chunking: UInt32, Sendable { case fixed = 0, contentDefined = 1 }

    public struct Stream: Sendable {
        public var size: UInt64
        public var chunking: Chunking
        public var chunkSize: Int
        public var entries: [Entry]
        /// Start offsets of entries, for content-defined streams (empty for fixed ones).
        var offsets: [UInt64] = []

        public init(size: UInt64, chunking: Chunking, chunkSize: Int, entries: [Entry]) {
            self.size = size; self.chunking = chunking; self.chunkSize = chunkSize; self.entries = entries
            if chunking == .contentDefined {
                var position: UInt64 = 0
                offsets = entries.map { entry in
                    defer { position += UInt64(entry.length) }
                    return position
                }
            }
        }

        /// The entry covering `offset`, and the entry's start.
        public func entryIndex(containing offset: UInt64) -> Int? {
            guard offset < size else { return nil }
            if chunking == .fixed { return Int(offset / UInt64(chunkSize)) }
            var low = 0, high = offsets.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if offsets[middle] <= offset { low = middle } else { high = middle - 1 }
            }
            return low
        }

        public func start(ofEntry index: Int) -> UInt64 {
            chunking == .fixed ? UInt64(index) * UInt64(chunkSize) : offsets[index]
        }
    }

    /// The descriptive part of the index, JSON in the file (snake_case keys).
    public struct Manifest: Codable, Sendable {
        public struct Stream: Codable, Sendable {
            public var name: String
            public var kind: StreamKind
            public var size: UInt64
        }
        public var storeId: String
        public var datasource: String
        public var datasourceName: String
        public var provider: String
        public var rp: String
        public var time: Date
        public var kind: BackupMode
        public var consistency: Consistency
        public var reason: String
        public var pauseMs: Int
        public var token: String?
        public var parentRp: String?
        public var metadata: JSONValue?
        public var streams: [Stream]
    }

    public var manifest: Manifest
    public var streams: [Stream]

    public init(manifest: Manifest, streams: [Stream]) {
        self.manifest = manifest
        self.streams = streams
    }

    /// Every distinct data digest the index references.
    public var dataDigests: Set<ChunkDigest> {
        var set = Set<ChunkDigest>()
        for stream in streams { for entry in stream.entries where entry.flag == .data { set.insert(entry.digest) } }
        return set
    }

    static let magic = Array("DPMINDX1".utf8)
    static let headerSize = 64
    static let streamRecordSize = 48
    static let entrySize = 40
}
