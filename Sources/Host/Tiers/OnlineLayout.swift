import Foundation
import PluginAPI

/// The layout of dpm's objects in an online bucket (S3 and compatible), self-describing so
/// that a new server holding only the endpoint, the credentials and the passphrase can list
/// and recover every point (`dpm online attach`).
///
///     dpm/bucket.json            {"format":"dpm-online","version":1,"created":"…","server":"…",
///                                 "lock_mode":"governance|compliance|none","lock_window_days":N}
///                                plain JSON
///     dpm/key.json               the tier key, wrapped by the passphrase (`WrappedTierKey`), plain JSON
///     dpm/chunks/XX/NAME         one chunk, sealed; NAME = hex HMAC-SHA-256 of the plain chunk under
///                                the tier key's naming key, XX its first two digits
///     dpm/points/DS/RP.idx       the point's index (RecoveryPointIndex format, entries naming chunks
///                                by NAME), sealed; DS escaped as in the store's points/ folder
///     dpm/manifests/DS/RP.json   the point's manifest (`OnlineManifest`), sealed; written last, so a
///                                point exists online exactly when its manifest does
///
/// Sealed objects are nonce (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes) under the tier
/// key's chunk key, with the object's key (UTF-8) as additional authenticated data, so an
/// object moved to another key fails to open. A chunk's plaintext is one zstd frame that
/// declares its size; an index's and a manifest's are the bytes themselves.
///
/// Locks (S3 Object Lock): manifests and indexes are locked until their point expires;
/// chunks until now + the lock window when uploaded, and extended to now + the window
/// whenever a new point uses a chunk whose lock has less than half the window left. A chunk
/// no live point uses therefore unlocks within one window, and gc can then delete its
/// versions.
public enum OnlineLayout {
    public static let bucketFile = "dpm/bucket.json"
    public static let keyFile = "dpm/key.json"
    public static let manifestsPrefix = "dpm/manifests/"

    public static func chunk(_ name: ChunkDigest) -> String {
        let hex = name.hex
        return "dpm/chunks/\(hex.prefix(2))/\(hex)"
    }

    public static func index(datasource: String, rp: String) -> String {
        "dpm/points/\(RecoveryPointID.directoryName(forDataSource: datasource))/\(rp).idx"
    }

    public static func manifest(datasource: String, rp: String) -> String {
        "\(manifestsPrefix)\(RecoveryPointID.directoryName(forDataSource: datasource))/\(rp).json"
    }

    /// The chunk name a chunk key ends in, or nil for other keys.
    public static func chunkName(ofKey key: String) -> ChunkDigest? {
        guard key.hasPrefix("dpm/chunks/") else { return nil }
        return ChunkDigest(hex: String(key.split(separator: "/").last ?? ""))
    }
}

/// `dpm/bucket.json`.
public struct OnlineBucketDescription: Codable, Sendable {
    public var format = "dpm-online"
    public var version = 1
    public var created: Date
    public var server: String
    public var lockMode: String
    public var lockWindowDays: Int
}

/// `dpm/manifests/DS/RP.json` (sealed): what a new server needs to list and recover a point.
public struct OnlineManifest: Codable, Sendable {
    public var format = "dpm-online-point"
    public var version = 1
    public var datasource: DataSourceRecord
    public var point: RecoveryPointRecord
    public var created: Date
    public var expires: Date
    public var chunks: Int
    public var plainBytes: UInt64
    public var indexKey: String
}

/// Seals and opens online objects (see `OnlineLayout`). Not thread-safe: one per thread.
final class OnlineSealer {
    let crypto: Crypto
    let zstd: ZstdCodec

    init(key: TierKey) throws {
        crypto = try Crypto(keys: key.keys)
        zstd = try ZstdCodec(level: 1)
    }

    /// The chunk's name in the bucket.
    func name(_ plain: UnsafeRawBufferPointer) -> ChunkDigest { crypto.digest(plain) }

    func seal(_ plain: UnsafeRawBufferPointer, key: String) throws -> [UInt8] {
        let nonce = try Crypto.randomBytes(12)
        var out = [UInt8](repeating: 0, count: 12 + plain.count + 16)
        let tag = try out.withUnsafeMutableBytes { raw in
            try crypto.seal(plain, into: UnsafeMutableRawBufferPointer(rebasing: raw[12..<12 + plain.count]), nonce: nonce, aad: Array(key.utf8))
        }
        out.replaceSubrange(0..<12, with: nonce)
        out.replaceSubrange((12 + plain.count)..., with: tag)
        return out
    }

    func open(_ sealed: UnsafeRawBufferPointer, key: String) throws -> [UInt8] {
        guard sealed.count >= 28 else { throw HostError(.corrupt, "online object \(key) is too short to be sealed") }
        var plain = [UInt8](repeating: 0, count: sealed.count - 28)
        let opened = plain.withUnsafeMutableBytes { out in
            crypto.open(UnsafeRawBufferPointer(rebasing: sealed[12..<(sealed.count - 16)]), into: out, nonce: Array(sealed[0..<12]),
                        aad: Array(key.utf8), tag: Array(sealed[(sealed.count - 16)...]))
        }
        guard opened else { throw HostError(.corrupt, "online object \(key) does not open: it is damaged, or sealed with another key") }
        return plain
    }

    /// A chunk ready to upload: zstd, then sealed.
    func sealChunk(_ plain: UnsafeRawBufferPointer, key: String) throws -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: ZstdCodec.bound(plain.count))
        let size = try frame.withUnsafeMutableBytes { raw -> Int in
            guard let size = zstd.compress(plain, into: raw) else { throw HostError(.internalError, "zstd could not compress a chunk") }
            return size
        }
        return try frame[0..<size].withUnsafeBytes { try seal($0, key: key) }
    }

    /// Opens a downloaded chunk into `destination` and checks it against its name.
    func openChunk(_ sealed: UnsafeRawBufferPointer, name: ChunkDigest, key: String, into destination: UnsafeMutableRawBufferPointer) throws {
        let frame = try open(sealed, key: key)
        try frame.withUnsafeBytes { raw in
            guard ZstdCodec.frameContentSize(raw) == UInt64(destination.count) else {
                throw HostError(.corrupt, "online chunk \(name.hex) does not hold the \(destination.count) bytes its index expects")
            }
            try zstd.decompress(raw, into: destination, what: "online chunk \(name.hex)")
        }
        guard crypto.digest(UnsafeRawBufferPointer(destination)) == name else {
            throw HostError(.corrupt, "online chunk \(name.hex): its content does not match its name")
        }
    }
}
