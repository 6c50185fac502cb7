import CCrypto
import Foundation

/// SHA-256, HMAC-SHA-256 and AES-256-GCM through OpenSSL libcrypto (EVP). The only file in
/// Host that touches libcrypto.
///
/// Instances hold reusable OpenSSL contexts and are not thread-safe: give each thread its own.
public final class Crypto {
    private let digestContext: OpaquePointer
    private let sha256: OpaquePointer
    private var cipherContext: OpaquePointer?
    private var hmacKey: [UInt8]?
    private var encryptionKey: [UInt8]?

    /// - Parameter keys: the store's keys when it is encrypted: digests become
    ///   HMAC-SHA-256 under `keys.mac` and chunks are sealed with AES-256-GCM under `keys.encryption`.
    public init(keys: StoreKeys? = nil) throws {
        guard let context = EVP_MD_CTX_new(), let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw HostError(.internalError, "OpenSSL could not provide SHA-256")
        }
        digestContext = context
        self.sha256 = sha256
        if let keys {
            hmacKey = keys.mac
            encryptionKey = keys.encryption
            cipherContext = EVP_CIPHER_CTX_new()
        }
    }

    deinit {
        EVP_MD_CTX_free(digestContext)
        EVP_MD_free(sha256)
        if let cipherContext { EVP_CIPHER_CTX_free(cipherContext) }
    }

    /// The chunk digest: SHA-256, or HMAC-SHA-256 when the store is encrypted (so digests
    /// leak nothing about content).
    public func digest(_ data: UnsafeRawBufferPointer) -> ChunkDigest {
        if let hmacKey { return Crypto.hmac(key: hmacKey, data) }
        var out = ChunkDigest.zero
        withUnsafeMutableBytes(of: &out.bytes) { raw in
            EVP_DigestInit_ex(digestContext, sha256, nil)
            EVP_DigestUpdate(digestContext, data.baseAddress, data.count)
            EVP_DigestFinal_ex(digestContext, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), nil)
        }
        return out
    }

    /// Plain SHA-256, whatever the store's keys.
    public static func sha256(_ data: UnsafeRawBufferPointer) -> ChunkDigest {
        var out = ChunkDigest.zero
        withUnsafeMutableBytes(of: &out.bytes) { raw in
            _ = EVP_Digest(data.baseAddress, data.count, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, EVP_sha256(), nil)
        }
        return out
    }

    public static func sha256(_ bytes: [UInt8]) -> ChunkDigest {
        bytes.withUnsafeBytes { sha256($0) }
    }

    public static func hmac(key: [UInt8], _ data: UnsafeRawBufferPointer) -> ChunkDigest {
        var out = ChunkDigest.zero
        var length: UInt32 = 32
        withUnsafeMutableBytes(of: &out.bytes) { raw in
            _ = HMAC(EVP_sha256(), key, Int32(key.count), data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count,
                     raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        }
        return out
    }

    public static func randomBytes(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw HostError(.internalError, "OpenSSL could not produce random bytes") }
        return bytes
    }

    /// PBKDF2-HMAC-SHA-256 of a passphrase: the key that wraps a tier's data key.
    public static func pbkdf2(passphrase: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let ok = passphrase.withUnsafeBufferPointer { pass in
            PKCS5_PBKDF2_HMAC(pass.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, Int32(pass.count),
                              salt, Int32(salt.count), Int32(iterations), EVP_sha256(), Int32(length), &out)
        }
        guard ok == 1 else { throw HostError(.internalError, "OpenSSL could not derive a key with PBKDF2") }
        return out
    }

    public var encrypts: Bool { encryptionKey != nil }

    /// Seals `plain` into `out` (same length) with AES-256-GCM; returns the 16-byte tag.
    /// `aad` is authenticated but not encrypted.
    public func seal(_ plain: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, nonce: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        guard let cipherContext, let encryptionKey else { throw HostError(.internalError, "this store is not encrypted") }
        var tag = [UInt8](repeating: 0, count: 16)
        var length: Int32 = 0
        let ok = EVP_EncryptInit_ex(cipherContext, EVP_aes_256_gcm(), nil, nil, nil) == 1
            && EVP_CIPHER_CTX_ctrl(cipherContext, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1
            && EVP_EncryptInit_ex(cipherContext, nil, nil, encryptionKey, nonce) == 1
            && EVP_EncryptUpdate(cipherContext, nil, &length, aad, Int32(aad.count)) == 1
            && EVP_EncryptUpdate(cipherContext, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length,
                                 plain.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(plain.count)) == 1
            && EVP_EncryptFinal_ex(cipherContext, out.baseAddress?.assumingMemoryBound(to: UInt8.self).advanced(by: Int(length)), &length) == 1
            && EVP_CIPHER_CTX_ctrl(cipherContext, EVP_CTRL_GCM_GET_TAG, 16, &tag) == 1
        guard ok else { throw HostError(.internalError, "AES-256-GCM encryption failed") }
        return tag
    }

    /// Opens a sealed payload; false when the tag does not match (wrong key or damage).
    public func open(_ sealed: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, nonce: [UInt8], aad: [UInt8], tag: [UInt8]) -> Bool {
        guard let cipherContext, let encryptionKey else { return false }
        var length: Int32 = 0
        var tag = tag
        return EVP_DecryptInit_ex(cipherContext, EVP_aes_256_gcm(), nil, nil, nil) == 1
            && EVP_CIPHER_CTX_ctrl(cipherContext, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1
            && EVP_DecryptInit_ex(cipherContext, nil, nil, encryptionKey, nonce) == 1
            && EVP_DecryptUpdate(cipherContext, nil, &length, aad, Int32(aad.count)) == 1
            && EVP_DecryptUpdate(cipherContext, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length,
                                 sealed.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(sealed.count)) == 1
            && EVP_CIPHER_CTX_ctrl(cipherContext, EVP_CTRL_GCM_SET_TAG, 16, &tag) == 1
            && EVP_DecryptFinal_ex(cipherContext, out.baseAddress?.assumingMemoryBound(to: UInt8.self).advanced(by: Int(length)), &length) == 1
    }
}
