import CCrypto
import CZstd
import Foundation

/// The primitives the store format is built from: CRC-32, SHA-256, HMAC-SHA-256,
/// AES-256-GCM (OpenSSL libcrypto) and zstd, plus whole-file reading.
enum Primitives {
    /// CRC-32 with the zlib polynomial (reflected 0xEDB88320, initial and final XOR 0xFFFFFFFF).
    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    private static let crcTable: [UInt32] = (0..<256).map { (index: Int) -> UInt32 in
        var value = UInt32(index)
        for _ in 0..<8 { value = (value & 1) != 0 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1 }
        return value
    }

    static func sha256(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { raw in EVP_Digest(raw.baseAddress, raw.count, &out, &length, EVP_sha256(), nil) }
        precondition(ok == 1 && length == 32, "OpenSSL SHA-256 failed")
        return out
    }

    static func hmacSHA256(key: [UInt8], _ message: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = message.withUnsafeBytes { raw in
            HMAC(EVP_sha256(), key, Int32(key.count), raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &out, &length)
        }
        precondition(result != nil && length == 32, "OpenSSL HMAC-SHA-256 failed")
        return out
    }

    /// AES-256-GCM decryption; nil when the tag does not authenticate the data.
    static func aesGCMDecrypt(key: [UInt8], nonce: [UInt8], tag: [UInt8], aad: [UInt8],
                              _ ciphertext: ArraySlice<UInt8>) -> [UInt8]? {
        guard key.count == 32, ciphertext.count < Int(Int32.max), let context = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(context) }
        var plain = [UInt8](repeating: 0, count: ciphertext.count + 16)
        var length: Int32 = 0
        var tagCopy = tag
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1,
              EVP_DecryptInit_ex(context, nil, nil, key, nonce) == 1,
              EVP_DecryptUpdate(context, nil, &length, aad, Int32(aad.count)) == 1 else { return nil }
        let updated = ciphertext.withUnsafeBytes { raw in
            EVP_DecryptUpdate(context, &plain, &length, raw.bindMemory(to: UInt8.self).baseAddress, Int32(raw.count))
        }
        guard updated == 1 else { return nil }
        let written = Int(length)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tagCopy.count), &tagCopy) == 1 else { return nil }
        var finalLength: Int32 = 0
        let final = plain.withUnsafeMutableBufferPointer { buffer in
            EVP_DecryptFinal_ex(context, buffer.baseAddress! + written, &finalLength)
        }
        guard final == 1 else { return nil }
        return Array(plain[0..<(written + Int(finalLength))])
    }

    /// Decompresses zstd data that must expand to exactly `length` bytes; throws a message otherwise.
    static func zstdDecompress(_ compressed: ArraySlice<UInt8>, length: Int) throws -> [UInt8] {
        var plain = [UInt8](repeating: 0, count: max(length, 1))
        let result = compressed.withUnsafeBytes { source in
            plain.withUnsafeMutableBytes { target in
                ZSTD_decompress(target.baseAddress, length, source.baseAddress, source.count)
            }
        }
        if ZSTD_isError(result) != 0 {
            throw Failure.damage("zstd cannot decompress the payload (\(String(cString: ZSTD_getErrorName(result))))")
        }
        guard result == length else {
            throw Failure.damage("the payload decompresses to \(result) bytes, not the \(length) of its header")
        }
        plain.removeLast(plain.count - length)
        return plain
    }

    /// The whole content of a file, or a damage failure naming it.
    static func readFile(_ path: String, what: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Failure.damage("\(what) \(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw Failure.damage("\(what) \(path): not a regular file")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure.damage("\(what) \(path): read error (\(String(cString: strerror(errno))))") }
            guard count > 0 else { throw Failure.damage("\(what) \(path): shrank while being read") }
            done += count
        }
        return bytes
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Bytes from hex digits (either case), or nil.
    static func unhex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, digits.allSatisfy({ UInt8(String(UnicodeScalar($0)), radix: 16) != nil }) else { return nil }
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) }
    }
}
