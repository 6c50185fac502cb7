import CCrypto
import Foundation

/// SHA-256, HMAC-SHA-256 and MD5 through OpenSSL libcrypto, for request signing and S3's
/// integrity headers. The plugin cannot use Host's `Crypto`, so this is its own small copy of
/// the one-shot calls it needs. All functions are thread-safe (OpenSSL's one-shot calls keep
/// no shared state).
enum Digest {
    /// The SHA-256 of nothing, which S3 expects as `x-amz-content-sha256` of a request without a body.
    static let emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    static func sha256(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        oneShot(data, EVP_sha256(), length: 32)
    }

    static func sha256<Bytes: ContiguousBytes>(_ bytes: Bytes) -> [UInt8] {
        bytes.withUnsafeBytes { sha256($0) }
    }

    static func md5(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        oneShot(data, EVP_md5(), length: 16)
    }

    static func md5<Bytes: ContiguousBytes>(_ bytes: Bytes) -> [UInt8] {
        bytes.withUnsafeBytes { md5($0) }
    }

    static func hmacSHA256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        message.withUnsafeBufferPointer { text in
            _ = HMAC(EVP_sha256(), key, Int32(key.count), text.baseAddress, text.count, &out, &length)
        }
        return out
    }

    static func hmacSHA256(key: [UInt8], _ message: String) -> [UInt8] {
        hmacSHA256(key: key, Array(message.utf8))
    }

    /// Lower-case hexadecimal, as SigV4 writes hashes and signatures.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8](repeating: 0, count: bytes.count * 2)
        for (index, byte) in bytes.enumerated() {
            text[2 * index] = digits[Int(byte >> 4)]
            text[2 * index + 1] = digits[Int(byte & 15)]
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    private static func oneShot(_ data: UnsafeRawBufferPointer, _ type: OpaquePointer?, length: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        // A zero-length buffer may have a nil base address; OpenSSL accepts any pointer with count 0.
        let base = data.baseAddress ?? UnsafeRawPointer(bitPattern: 1)
        _ = EVP_Digest(base, data.count, &out, nil, type, nil)
        return out
    }
}

/// An incremental SHA-256 (or MD5) for bodies read in pieces, such as a file range.
/// Not thread-safe: one instance per hash being computed.
final class StreamingDigest {
    private let context: OpaquePointer

    enum Algorithm { case sha256, md5 }

    init(_ algorithm: Algorithm) throws {
        guard let context = EVP_MD_CTX_new() else {
            throw S3Error.local("OpenSSL could not allocate a digest context", code: "InternalError")
        }
        self.context = context
        EVP_DigestInit_ex(context, algorithm == .sha256 ? EVP_sha256() : EVP_md5(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        EVP_DigestUpdate(context, base, data.count)
    }

    func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        return Array(out.prefix(Int(length)))
    }
}
