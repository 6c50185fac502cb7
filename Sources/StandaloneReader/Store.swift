import Foundation

/// A dpm store directory read from its files alone: `config.json`, the keys derived from an
/// optional key file, `chunks/XX/DIGEST` blobs and `points/DS/RP.dpmidx` indexes.
struct Store {
    let directory: String
    let id: String
    let encrypted: Bool
    /// AES-256-GCM key and chunk-digest HMAC key, when the store is encrypted.
    private(set) var encryptionKey: [UInt8] = []
    private(set) var macKey: [UInt8] = []

    /// Opens the store; `keyFile` is required (and checked) only when the store is encrypted.
    init(directory: String, keyFile: String?, needKey: Bool) throws {
        self.directory = directory
        let configPath = directory + "/config.json"
        let bytes = try Primitives.readFile(configPath, what: "store configuration")
        func damaged(_ problem: String) -> Failure { Failure.damage("store configuration \(configPath): \(problem)") }
        guard let config = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw damaged("not a JSON object")
        }
        guard config["format"] as? String == "dpm-store", (config["version"] as? NSNumber)?.intValue == 1 else {
            throw damaged("describes format \(config["format"] ?? "?") version \(config["version"] ?? "?"), not dpm-store version 1")
        }
        id = config["id"] as? String ?? ""
        switch config["encryption"] as? String {
        case "none": encrypted = false
        case "aes-256-gcm": encrypted = true
        case let other: throw damaged("unknown encryption \(other ?? "(missing)")")
        }
        guard encrypted && needKey else { return }
        guard let keyFile else {
            throw Failure.damage("the store at \(directory) is encrypted; pass its key file with --key-file FILE")
        }
        let text = String(decoding: try Primitives.readFile(keyFile, what: "key file"), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64, let master = Primitives.unhex(text) else {
            throw Failure.damage("key file \(keyFile): must hold 64 hex digits (a 32-byte key)")
        }
        func derive(_ label: String) -> [UInt8] { Primitives.hmacSHA256(key: master, ArraySlice(label.utf8)) }
        guard let check = config["key_check"] as? String, Primitives.hex(derive("dpm key check")) == check.lowercased() else {
            throw Failure.damage("key file \(keyFile): not the key of the store at \(directory) (key_check in \(configPath) differs)")
        }
        encryptionKey = derive("dpm chunk encryption")
        macKey = derive("dpm chunk digest")
    }

    func chunkPath(_ digest: [UInt8]) -> String {
        let hex = Primitives.hex(digest)
        return "\(directory)/chunks/\(hex.prefix(2))/\(hex)"
    }

    /// Reads, checks, decrypts and decompresses the chunk named by `digest`, which must hold
    /// `length` bytes whose SHA-256 (HMAC-SHA-256 when encrypted) is the digest.
    func chunk(_ digest: [UInt8], length: Int) throws -> [UInt8] {
        let path = chunkPath(digest)
        let blob = try Primitives.readFile(path, what: "chunk")
        func damaged(_ problem: String) -> Failure { Failure.damage("chunk \(path): \(problem)") }
        func u32(_ at: Int) -> UInt32 { (0..<4).reversed().reduce(0) { $0 << 8 | UInt32(blob[at + $1]) } }

        guard blob.count >= 48 else { throw damaged("\(blob.count) bytes is too short for a chunk header") }
        guard Array(blob[0..<4]) == Array("DPMC".utf8) else { throw damaged("not a dpm chunk (bad magic)") }
        guard blob[4] == 1 else { throw damaged("chunk format version \(blob[4]) is unknown") }
        guard Primitives.crc32(blob[0..<44]) == u32(44) else { throw damaged("header CRC-32 mismatch") }
        let compression = blob[5], encryption = blob[6]
        let plainLength = Int(u32(8)), payloadLength = Int(u32(12))
        guard compression <= 1, encryption <= 1 else {
            throw damaged("unknown compression \(compression) or encryption \(encryption)")
        }
        guard payloadLength == blob.count - 48 else {
            throw damaged("header announces a \(payloadLength)-byte payload, the file holds \(blob.count - 48)")
        }
        guard plainLength == length else {
            throw damaged("holds \(plainLength) bytes, but the index entry covers \(length)")
        }
        guard (encryption == 1) == encrypted else {
            throw damaged(encrypted ? "not encrypted, in an encrypted store" : "encrypted, in a store without encryption")
        }

        var payload = blob[48...]
        if encryption == 1 {
            guard let plain = Primitives.aesGCMDecrypt(key: encryptionKey, nonce: Array(blob[16..<28]), tag: Array(blob[28..<44]),
                                                       aad: digest + blob[0..<16], payload) else {
                throw damaged("AES-256-GCM authentication failed; the chunk is damaged or was not written with this key")
            }
            payload = plain[...]
        }
        let plain: [UInt8]
        if compression == 1 {
            do { plain = try Primitives.zstdDecompress(payload, length: plainLength) } catch let failure as Failure {
                throw damaged(failure.message)
            }
        } else {
            guard payload.count == plainLength else { throw damaged("uncompressed payload is \(payload.count) bytes, not \(plainLength)") }
            plain = Array(payload)
        }
        let actual = encrypted ? Primitives.hmacSHA256(key: macKey, plain[...]) : Primitives.sha256(plain[...])
        guard actual == digest else {
            throw damaged("content \(encrypted ? "HMAC-SHA-256" : "SHA-256") is \(Primitives.hex(actual)), not the chunk's name")
        }
        return plain
    }

    /// Paths of every index file under `points/`, sorted.
    func indexPaths() throws -> [String] {
        let points = directory + "/points"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: points, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure.damage("\(points): missing; is \(directory) a dpm store (DATA/store)?")
        }
        var paths: [String] = []
        for source in (try? FileManager.default.contentsOfDirectory(atPath: points)) ?? [] {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(points)/\(source)")) ?? []
            paths += files.filter { $0.hasSuffix(".dpmidx") }.map { "\(points)/\(source)/\($0)" }
        }
        return paths.sorted()
    }

    /// The directory name of a data source under `points/`: letters, digits, '_', '-' and
    /// '.' (not leading) pass; every other byte is %XX (as dpm writes it).
    static func directoryName(forDataSource id: String) -> String {
        var out = ""
        for (position, byte) in id.utf8.enumerated() {
            let plain = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D || (byte == 0x2E && position > 0)
            out += plain ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return out.isEmpty ? "%" : out
    }
}
