import Foundation

/// The data key of encrypted long-term copies (tape and online), unlocked by a passphrase.
///
/// One key serves every encrypted copy a server makes. It never leaves the server
/// unwrapped: the data directory holds it wrapped (`DATA/tier-key.json`), every tape
/// label and every online bucket carries the same wrapped form, so the passphrase alone
/// unlocks a copy on any server. The wrapped form (`WrappedTierKey`) is this JSON:
///
///     {"format":"dpm-tier-key","version":1,"kdf":"pbkdf2-hmac-sha256","iterations":N,
///      "salt":"hex","cipher":"aes-256-gcm","nonce":"hex","wrapped":"hex","tag":"hex",
///      "key_fingerprint":"hex"}
///
/// - KEK = PBKDF2-HMAC-SHA-256(passphrase as UTF-8 bytes, salt, iterations), 32 bytes.
/// - wrapped‖tag = AES-256-GCM(KEK, nonce, the 32-byte master key), with the 12 bytes
///   "dpm tier key" as additional authenticated data; a wrong passphrase fails the tag.
/// - key_fingerprint = the first 16 bytes, in hex, of HMAC-SHA-256(master, "dpm key fingerprint").
/// - From the master key, exactly as for an encrypted store (`StoreKeys`): the chunk
///   sealing key HMAC-SHA-256(master, "dpm chunk encryption") and the chunk naming key
///   HMAC-SHA-256(master, "dpm chunk digest").
public struct TierKey: Sendable {
    public let master: [UInt8]
    public let keys: StoreKeys
    public let fingerprint: String

    init(master: [UInt8]) {
        self.master = master
        keys = StoreKeys(master: master)
        fingerprint = TierKey.fingerprint(of: master)
    }

    static func fingerprint(of master: [UInt8]) -> String {
        Hex.string(Array(Array("dpm key fingerprint".utf8).withUnsafeBytes { Crypto.hmac(key: master, $0).raw }.prefix(16)))
    }

    static let aad = Array("dpm tier key".utf8)
    static let iterations = 200_000

    /// A new random key and its wrapped form under `passphrase`.
    static func create(passphrase: String) throws -> (TierKey, WrappedTierKey) {
        let key = TierKey(master: try Crypto.randomBytes(32))
        return (key, try key.wrap(passphrase: passphrase))
    }

    func wrap(passphrase: String) throws -> WrappedTierKey {
        let salt = try Crypto.randomBytes(16), nonce = try Crypto.randomBytes(12)
        let kek = try Crypto.pbkdf2(passphrase: Array(passphrase.utf8), salt: salt, iterations: Self.iterations)
        let crypto = try Crypto(keys: StoreKeys(encryption: kek, mac: kek))
        var wrapped = [UInt8](repeating: 0, count: 32)
        let tag = try master.withUnsafeBytes { plain in
            try wrapped.withUnsafeMutableBytes { try crypto.seal(plain, into: $0, nonce: nonce, aad: Self.aad) }
        }
        return WrappedTierKey(iterations: Self.iterations, salt: Hex.string(salt), nonce: Hex.string(nonce),
                              wrapped: Hex.string(wrapped), tag: Hex.string(tag), keyFingerprint: fingerprint)
    }

    /// Unlocks a wrapped key; `what` names where it came from (a tape, a bucket) in errors.
    static func unwrap(_ wrapped: WrappedTierKey, passphrase: String, what: String) throws -> TierKey {
        guard wrapped.format == "dpm-tier-key", wrapped.version == 1, wrapped.kdf == "pbkdf2-hmac-sha256", wrapped.cipher == "aes-256-gcm",
              (1...10_000_000).contains(wrapped.iterations),
              let salt = Hex.bytes(wrapped.salt), let nonce = Hex.bytes(wrapped.nonce), nonce.count == 12,
              let sealed = Hex.bytes(wrapped.wrapped), sealed.count == 32, let tag = Hex.bytes(wrapped.tag), tag.count == 16 else {
            throw HostError(.corrupt, "the wrapped encryption key of \(what) is damaged or of an unknown kind")
        }
        let kek = try Crypto.pbkdf2(passphrase: Array(passphrase.utf8), salt: salt, iterations: wrapped.iterations)
        let crypto = try Crypto(keys: StoreKeys(encryption: kek, mac: kek))
        var master = [UInt8](repeating: 0, count: 32)
        let opened = sealed.withUnsafeBytes { raw in
            master.withUnsafeMutableBytes { crypto.open(raw, into: $0, nonce: nonce, aad: Self.aad, tag: tag) }
        }
        guard opened else {
            throw HostError(.invalid, "the passphrase does not unlock the encryption key of \(what) (key \(wrapped.keyFingerprint)); "
                + "give the passphrase these copies were made with (--passphrase-file FILE or the tiers.passphrase_file setting)")
        }
        let key = TierKey(master: master)
        guard key.fingerprint == wrapped.keyFingerprint else {
            throw HostError(.corrupt, "the encryption key of \(what) unwraps, but its fingerprint \(key.fingerprint) is not the recorded \(wrapped.keyFingerprint)")
        }
        return key
    }
}

/// A `TierKey` wrapped by a passphrase (see `TierKey` for the format).
public struct WrappedTierKey: Codable, Sendable, Equatable {
    public var format = "dpm-tier-key"
    public var version = 1
    public var kdf = "pbkdf2-hmac-sha256"
    public var iterations: Int
    public var salt: String
    public var cipher = "aes-256-gcm"
    public var nonce: String
    public var wrapped: String
    public var tag: String
    public var keyFingerprint: String
}

/// Lower-case hex of bytes and back.
enum Hex {
    static func string(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = ChunkDigest.nibble(digits[index]), let low = ChunkDigest.nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }
}

/// A tier key together with its wrapped form: what making an encrypted copy needs.
public struct TierEncryption: Sendable {
    public let key: TierKey
    public let wrapped: WrappedTierKey

    var descriptor: TierArchiveManifest.Encryption {
        TierArchiveManifest.Encryption(keyFingerprint: key.fingerprint, wrappedKey: wrapped)
    }
}
