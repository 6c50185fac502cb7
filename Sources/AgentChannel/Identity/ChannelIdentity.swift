import CSSL
import Foundation
import Glibc

/// One side's key pair and self-signed certificate: what it presents in every TLS handshake.
///
/// Stored in a folder the caller owns (created 0700 when missing):
/// - `key.pem`: the private key, an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY") of an ECDSA
///   P-256 key; mode 0600, and loading refuses a key file that others can read.
/// - `certificate.pem`: an X.509 v3 certificate in PEM, self-signed with that key (ECDSA with
///   SHA-256), subject and issuer `CN=<name>`, a random 63-bit serial, valid from an hour before
///   its creation for 100 years. Nobody checks its validity or chain: peers pin the key
///   (`pin`, the SHA-256 of the SubjectPublicKeyInfo), so only the key matters.
///
/// The only file of AgentChannel that creates or parses keys and certificates.
public final class ChannelIdentity: @unchecked Sendable {
    public let name: String
    public let folder: String
    public let pin: KeyPin
    /// EVP_PKEY and X509, owned; immutable after init, so safe to share between threads.
    let key: OpaquePointer
    let certificate: OpaquePointer

    static let keyFile = "key.pem"
    static let certificateFile = "certificate.pem"

    private init(name: String, folder: String, key: OpaquePointer, certificate: OpaquePointer) throws {
        guard let pin = KeyPin(certificate: certificate) else {
            EVP_PKEY_free(key)
            X509_free(certificate)
            throw ChannelError(.internalError, "cannot read the public key of the certificate in \(folder)")
        }
        self.name = name
        self.folder = folder
        self.key = key
        self.certificate = certificate
        self.pin = pin
    }

    deinit {
        EVP_PKEY_free(key)
        X509_free(certificate)
    }

    /// Loads the identity in `folder`, or creates one named `name` when the folder holds none.
    public static func loadOrCreate(folder: String, name: String) throws -> ChannelIdentity {
        if FileManager.default.fileExists(atPath: folder + "/" + keyFile) { return try load(folder: folder) }
        return try create(folder: folder, name: name)
    }

    /// Makes a new key pair and certificate in `folder`. Refuses to overwrite an existing key
    /// unless `replacing` is true: a new key means every peer that pinned the old one refuses
    /// this side until it is enrolled again.
    public static func create(folder: String, name: String, replacing: Bool = false) throws -> ChannelIdentity {
        guard !name.isEmpty, name.utf8.count <= 64, !name.contains("\0") else {
            throw ChannelError(.invalid, "identity name \"\(name)\" must be 1 to 64 bytes (it becomes the certificate's CN)")
        }
        let keyPath = folder + "/" + keyFile
        if !replacing && FileManager.default.fileExists(atPath: keyPath) {
            throw ChannelError(.invalid, "\(keyPath) exists already; pass replacing: true to make a new key (peers must then enroll it again)")
        }
        try AtomicFile.ensureFolder(folder)
        guard let key = dpm_generate_p256_key() else { throw openSSLFailure("cannot generate a P-256 key") }
        guard let certificate = X509_new() else {
            EVP_PKEY_free(key)
            throw openSSLFailure("cannot allocate a certificate")
        }
        let identity: ChannelIdentity
        do {
            try sign(certificate, name: name, key: key)
            identity = try ChannelIdentity(name: name, folder: folder, key: key, certificate: certificate)
        } catch {
            EVP_PKEY_free(key)
            X509_free(certificate)
            throw error
        }
        let keyPEM = try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
        let certificatePEM = try pem { PEM_write_bio_X509($0, certificate) }
        try AtomicFile.write(certificatePEM, to: folder + "/" + certificateFile, mode: 0o644)
        try AtomicFile.write(keyPEM, to: keyPath, mode: 0o600)
        return identity
    }

    /// Loads the identity in `folder`; its name is the certificate's CN.
    public static func load(folder: String) throws -> ChannelIdentity {
        let keyPath = folder + "/" + keyFile
        let certificatePath = folder + "/" + certificateFile
        var status = stat()
        guard stat(keyPath, &status) == 0 else {
            throw ChannelError.posix(.invalid, "no channel identity in \(folder) (\(keyFile))")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw ChannelError(.invalid, "\(keyPath) can be read by other users (mode \(String(status.st_mode & 0o777, radix: 8))); run `chmod 600 \(keyPath)`")
        }
        guard let keyBytes = try AtomicFile.read(keyPath), let certificateBytes = try AtomicFile.read(certificatePath) else {
            throw ChannelError(.invalid, "the channel identity in \(folder) lacks \(certificateFile); make a new one (peers must enroll it again)")
        }
        guard let key = parse(keyBytes, { PEM_read_bio_PrivateKey($0, nil, nil, nil) }) else {
            throw openSSLFailure("\(keyPath) is not a PEM private key")
        }
        guard let certificate = parse(certificateBytes, { PEM_read_bio_X509($0, nil, nil, nil) }) else {
            EVP_PKEY_free(key)
            throw openSSLFailure("\(certificatePath) is not a PEM certificate")
        }
        guard X509_check_private_key(certificate, key) == 1 else {
            EVP_PKEY_free(key)
            X509_free(certificate)
            throw ChannelError(.invalid, "\(certificatePath) does not belong to the key in \(keyPath); restore the matching pair or make a new identity")
        }
        return try ChannelIdentity(name: commonName(of: certificate) ?? "", folder: folder, key: key, certificate: certificate)
    }

    /// Fills in a v3 certificate for `key`, self-signed with it.
    private static func sign(_ certificate: OpaquePointer, name: String, key: OpaquePointer) throws {
        let serial = UInt64.random(in: 1 ... UInt64(Int64.max))
        guard X509_set_version(certificate, 2) == 1,
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(certificate), serial) == 1,
              X509_gmtime_adj(X509_getm_notBefore(certificate), -3600) != nil,
              X509_gmtime_adj(X509_getm_notAfter(certificate), 100 * 365 * 86400) != nil,
              X509_set_pubkey(certificate, key) == 1,
              let subject = X509_get_subject_name(certificate),
              X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, name, -1, -1, 0) == 1,
              X509_set_issuer_name(certificate, subject) == 1,
              X509_sign(certificate, key, EVP_sha256()) > 0
        else { throw openSSLFailure("cannot make a self-signed certificate for \(name)") }
    }

    private static func commonName(of certificate: OpaquePointer) -> String? {
        guard let subject = X509_get_subject_name(certificate) else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        let length = X509_NAME_get_text_by_NID(subject, NID_commonName, &buffer, Int32(buffer.count))
        guard length >= 0 else { return nil }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `write` into a memory BIO and returns what it wrote.
    private static func pem(_ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw openSSLFailure("cannot allocate a memory BIO") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw openSSLFailure("cannot write PEM") }
        var start: UnsafeMutablePointer<CChar>?
        let length = dpm_bio_memory(bio, &start)
        guard let start, length > 0 else { throw openSSLFailure("PEM output is empty") }
        return [UInt8](UnsafeRawBufferPointer(start: start, count: Int(length)))
    }

    private static func parse(_ bytes: [UInt8], _ read: (OpaquePointer) -> OpaquePointer?) -> OpaquePointer? {
        bytes.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return read(bio)
        }
    }

    /// A ChannelError carrying OpenSSL's error queue of this thread.
    static func openSSLFailure(_ what: String) -> ChannelError {
        ChannelError(.tls, what + ": " + openSSLErrors())
    }

    /// Drains and describes this thread's OpenSSL error queue.
    static func openSSLErrors() -> String {
        var parts: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            parts.append(String(cString: buffer))
        }
        return parts.isEmpty ? "no OpenSSL error recorded" : parts.joined(separator: "; ")
    }
}

extension KeyPin {
    /// The pin of the public key inside an X509 certificate; nil when it has none.
    init?(certificate: OpaquePointer) {
        guard let publicKey = X509_get0_pubkey(certificate) else { return nil }
        let length = i2d_PUBKEY(publicKey, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_PUBKEY(publicKey, &cursor)
        }
        guard written == length else { return nil }
        self.init(subjectPublicKeyInfo: der)
    }
}
