import CCrypto
import Digests
import Foundation

/// SHA-256, HMAC-SHA-256, randomness and constant-time comparison through OpenSSL libcrypto:
/// what enrollment codes, proofs, pins and chunk re-hashing need. Stateless and thread-safe.
enum ChannelCrypto {
    static func sha256(_ data: UnsafeRawBufferPointer) -> ChunkDigest {
        var raw = [UInt8](repeating: 0, count: 32)
        _ = EVP_Digest(data.baseAddress, data.count, &raw, nil, EVP_sha256(), nil)
        return raw.withUnsafeBytes { ChunkDigest($0) }
    }

    static func sha256(_ bytes: [UInt8]) -> ChunkDigest {
        bytes.withUnsafeBytes { sha256($0) }
    }

    /// SHA-256 of a domain-separation tag followed by `bytes`.
    static func sha256(tag: String, _ bytes: [UInt8]) -> ChunkDigest {
        sha256(Array(tag.utf8) + [0] + bytes)
    }

    static func hmacSHA256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        _ = HMAC(EVP_sha256(), key, Int32(key.count), message, message.count, &out, &length)
        return out
    }

    static func randomBytes(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else {
            throw ChannelError(.internalError, "OpenSSL could not produce \(count) random bytes")
        }
        return bytes
    }

    /// Compares two secrets in time that depends only on their length.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && CRYPTO_memcmp(a, b, a.count) == 0
    }
}
