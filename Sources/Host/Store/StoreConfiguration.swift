import Foundation

/// The store's own description, `store/config.json`, written once when the store is created:
///
///     {"format": "dpm-store", "version": 1, "id": "UUID", "chunk_size": 4194304,
///      "compression": "zstd", "zstd_level": 1,
///      "encryption": "none" | "aes-256-gcm", "key_check": "64 hex digits or empty"}
///
/// `key_check` is HMAC-SHA-256(master key, "dpm key check") in lower-case hex, so a wrong key
/// file is refused before anything is read or written with it. `chunk_size`, `compression`
/// and `zstd_level` govern writing; a reader trusts each chunk's own header and each index's
/// stream table instead.
public struct StoreConfiguration: Codable, Sendable {
    public var format = "dpm-store"
    public var version = 1
    public var id: String
    public var chunkSize: Int
    public var compression = "zstd"
    public var zstdLevel: Int32 = 1
    public var encryption: String
    public var keyCheck: String

    public static let defaultChunkSize = 4 << 20

    public var encrypted: Bool { encryption == "aes-256-gcm" }
}

/// The keys of an encrypted store, derived from the 32-byte master key in the key file
/// (64 hex digits, either case, surrounding white space ignored). Each derivation is
/// HMAC-SHA-256 keyed with the master key over the label's UTF-8 bytes (no terminator):
/// - `encryption` = HMAC-SHA-256(master, "dpm chunk encryption"), the AES-256-GCM key;
/// - `mac` = HMAC-SHA-256(master, "dpm chunk digest"), the key of the chunk digests.
public struct StoreKeys: Sendable {
    public let encryption: [UInt8]
    public let mac: [UInt8]
    public let check: String

    public init(master: [UInt8]) {
        func derive(_ label: String) -> [UInt8] {
            Array(label.utf8).withUnsafeBytes { Crypto.hmac(key: master, $0).raw }
        }
        encryption = derive("dpm chunk encryption")
        mac = derive("dpm chunk digest")
        check = Array("dpm key check".utf8).withUnsafeBytes { Crypto.hmac(key: master, $0).hex }
    }

    /// Keys used as given (the tier key wrapping uses a derived key directly).
    init(encryption: [UInt8], mac: [UInt8]) {
        self.encryption = encryption
        self.mac = mac
        check = ""
    }

    /// Reads a key file.
    public static func load(_ path: String) throws -> StoreKeys {
        let text = String(decoding: try FileSystem.readFile(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let digest = ChunkDigest(hex: text.lowercased()) else {
            throw HostError(.invalid, "key file \(path) must hold 64 hex digits (32 bytes); create one with `dpm store keygen FILE`")
        }
        return StoreKeys(master: digest.raw)
    }

    /// Writes a new random key file readable only by its owner.
    public static func generate(_ path: String) throws {
        guard !FileSystem.exists(path) else { throw HostError(.invalid, "key file \(path) already exists; refusing to overwrite a key") }
        let key = try Crypto.randomBytes(32)
        let hex = key.withUnsafeBytes { ChunkDigest($0).hex }
        try FileSystem.writeAtomically(Data((hex + "\n").utf8), to: path)
        chmod(path, 0o600)
    }
}
