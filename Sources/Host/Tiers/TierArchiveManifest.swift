import Foundation
import PluginAPI

/// The archive of one recovery point that dpm hands a long-term tier (tape, online): a
/// POSIX pax archive (GNU tar, bsdtar and pax read it) holding everything the point needs
/// and nothing another point needs, so a copy restores on its own, on any server.
///
/// Members, in this order, under `dpm/DS/RP/` (DS the data source id escaped as in the
/// store's `points/` folder, RP the recovery point id):
///
///     ARCHIVE.json          this manifest (JSON, snake_case keys, below)
///     chunks/NAME.SUFFIX    one member per distinct chunk of the point, in the order the
///                           point first uses them
///     index.dpmidx          the point's index (RecoveryPointIndex's format), whose data
///                           entries name chunks by NAME
///
/// A chunk member is the chunk's bytes transformed as `chunks` says:
/// - SUFFIX `.zst`: one zstd frame that declares its content size (`zstd -d` restores it);
///   `.bin`: the plain bytes (compression off);
/// - with `.aes` appended (encryption on): 12-byte nonce ‖ AES-256-GCM ciphertext ‖ 16-byte
///   tag, sealed with the tier key's chunk key (see `TierKey`); the additional
///   authenticated data is the 32 raw bytes of NAME;
/// - NAME is the lower-case hex SHA-256 of the plain chunk, or, when encrypted,
///   HMAC-SHA-256 under the tier key's naming key, so names reveal nothing.
/// Since GCM is CTR mode with the counter starting at nonce‖00000002, `openssl enc -d
/// -aes-256-ctr -K KEY -iv NONCE00000002` on the ciphertext recovers the zstd frame with
/// the OpenSSL command line alone (the tape label's README.txt spells it out).
///
/// ARCHIVE.json keys (unknown keys must be ignored):
///
///     format "dpm-tier-archive", version 1, name (the archive's unique name),
///     created (ISO-8601), store_id (the store it was made from),
///     datasource {id, name, provider, kind}, point (the RecoveryPointRecord's fields:
///     id, time, kind, consistency, reason, pause_ms, logical_bytes …),
///     chunks {count, plain_bytes, naming "sha256"|"hmac-sha256", suffix},
///     encryption: null, or {"key_fingerprint", "wrapped_key": WrappedTierKey}
public struct TierArchiveManifest: Codable, Sendable {
    public struct DataSource: Codable, Sendable {
        public var id: String
        public var name: String
        public var provider: String
        public var kind: String
    }

    public struct Chunks: Codable, Sendable {
        public var count: Int
        public var plainBytes: UInt64
        public var naming: String
        public var suffix: String
    }

    public struct Encryption: Codable, Sendable, Equatable {
        public var keyFingerprint: String
        public var wrappedKey: WrappedTierKey
    }

    public var format = "dpm-tier-archive"
    public var version = 1
    public var name: String
    public var created: Date
    public var storeId: String
    public var datasource: DataSource
    public var point: RecoveryPointRecord
    public var chunks: Chunks
    public var encryption: Encryption?

    /// The folder of the archive's members.
    public static func folder(datasource: String, rp: String) -> String {
        "dpm/\(RecoveryPointID.directoryName(forDataSource: datasource))/\(rp)"
    }

    public static func suffix(compressed: Bool, encrypted: Bool) -> String {
        (compressed ? ".zst" : ".bin") + (encrypted ? ".aes" : "")
    }
}
