import Foundation
import PluginAPI
import PaxArchive

/// Reads a tier archive (format: `TierArchiveManifest`) as it streams back from a tier and
/// stages it into the disk store: every chunk is checked against its name, stored under the
/// store's own digest (a store of another server, or with another key, names chunks
/// differently), and the index is rewritten to those digests. The staged point then
/// restores, browses and extracts exactly like a disk recovery point.
///
/// Feed it the archive's bytes in order; `finish` publishes the chunks durably and returns
/// the manifest and the rewritten index. The caller holds the store lock shared, as a
/// backup does, so gc cannot sweep the staged chunks meanwhile.
final class TierArchiveStager {
    struct Staged {
        var manifest: TierArchiveManifest
        var index: RecoveryPointIndex
        var chunksReceived = 0
        var chunksNew = 0
        var bytesReceived: UInt64 = 0
    }

    /// Unlocks the key of an encrypted archive (asks for the passphrase).
    typealias KeyProvider = (TierArchiveManifest.Encryption) throws -> TierKey

    static let maxChunkMember = ZstdCodec.bound(64 << 20) + 28
    static let maxSmallMember = 1 << 30

    let store: ChunkStore
    let what: String
    private let keyProvider: KeyProvider
    private let reader = PaxReader()
    private let codec: ChunkCodec
    private let zstd: ZstdCodec
    private let batch: ChunkCommitBatch
    private var namer: Crypto?
    private var manifest: TierArchiveManifest?
    private var index: RecoveryPointIndex?
    private var names: [ChunkDigest: ChunkDigest] = [:]
    private var member: TarHeader?
    private var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    private var plain = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    private var filled = 0
    private var counts = (received: 0, new: 0)

    /// - Parameter what: names the archive and where it came from, in errors.
    init(store: ChunkStore, what: String, keyProvider: @escaping KeyProvider) throws {
        self.store = store
        self.what = what
        self.keyProvider = keyProvider
        codec = try store.makeCodec()
        zstd = try ZstdCodec(level: 1)
        batch = ChunkCommitBatch(store: store)
        reader.onMember = { [unowned self] header in try begin(header) }
        reader.onData = { [unowned self] bytes in try append(bytes) }
        reader.onMemberEnd = { [unowned self] in try end() }
    }

    deinit {
        buffer.deallocate()
        plain.deallocate()
    }

    func feed(_ bytes: UnsafeRawBufferPointer) throws {
        do {
            try reader.feed(bytes)
        } catch let error as PaxError {
            throw HostError(.corrupt, "\(what): \(error)")
        }
    }

    func finish() throws -> Staged {
        do {
            try reader.finish()
        } catch let error as PaxError {
            batch.discard()
            throw HostError(.corrupt, "\(what): \(error)")
        }
        guard let manifest, let index else {
            batch.discard()
            throw HostError(.corrupt, "\(what) lacks its \(manifest == nil ? "ARCHIVE.json" : "index.dpmidx"); it is not a complete dpm archive")
        }
        try batch.publish()
        return Staged(manifest: manifest, index: index, chunksReceived: counts.received, chunksNew: counts.new, bytesReceived: reader.offset)
    }

    /// Abandons a staging that failed; gc removes anything left.
    func discard() { batch.discard() }

    // MARK: Members

    private func begin(_ header: TarHeader) throws {
        let isChunk = header.path.contains("/chunks/")
        let limit = isChunk ? Self.maxChunkMember : Self.maxSmallMember
        guard header.size <= UInt64(limit) else {
            throw HostError(.corrupt, "\(what): member \(header.path) claims \(header.size) bytes, more than any dpm member (\(limit))")
        }
        if Int(header.size) > buffer.count {
            buffer.deallocate()
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(header.size), alignment: 64)
        }
        member = header
        filled = 0
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard filled + bytes.count <= buffer.count else { throw HostError(.corrupt, "\(what): a member is longer than its header says") }
        UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<filled + bytes.count]).copyMemory(from: bytes)
        filled += bytes.count
    }

    private func end() throws {
        guard let header = member else { return }
        member = nil
        let body = UnsafeRawBufferPointer(rebasing: buffer[0..<filled])
        let name = (header.path as NSString).lastPathComponent
        if name == "ARCHIVE.json" {
            try readManifest(body, path: header.path)
        } else if header.path.contains("/chunks/") {
            try stageChunk(body, fileName: name)
        } else if name == "index.dpmidx" {
            try readIndex(body, path: header.path)
        }
        // Other members (a later format's additions) are ignored.
    }

    private func readManifest(_ body: UnsafeRawBufferPointer, path: String) throws {
        guard manifest == nil else { throw HostError(.corrupt, "\(what) holds two manifests (\(path))") }
        let decoded: TierArchiveManifest
        do {
            decoded = try JSONCoding.decode(TierArchiveManifest.self, from: Data(body))
        } catch {
            throw HostError(.corrupt, "\(what): \(path) is not a dpm archive manifest (\(error))")
        }
        guard decoded.format == "dpm-tier-archive", decoded.version == 1 else {
            throw HostError(.unsupported, "\(what) is format \(decoded.format) v\(decoded.version), which this dpm cannot read; upgrade dpm")
        }
        if let encryption = decoded.encryption {
            namer = try Crypto(keys: try keyProvider(encryption).keys)
        } else {
            namer = try Crypto(keys: nil)
        }
        manifest = decoded
    }

    private func stageChunk(_ body: UnsafeRawBufferPointer, fileName: String) throws {
        guard let manifest, let namer else { throw HostError(.corrupt, "\(what): a chunk comes before ARCHIVE.json") }
        let suffix = manifest.chunks.suffix
        guard fileName.hasSuffix(suffix), let name = ChunkDigest(hex: String(fileName.dropLast(suffix.count))) else {
            throw HostError(.corrupt, "\(what): chunk member \(fileName) is not named DIGEST\(suffix)")
        }
        let problem = "\(what): chunk \(name.hex) is damaged"
        var payload = body
        if manifest.encryption != nil {
            guard body.count >= 28 else { throw HostError(.corrupt, "\(problem) (too short to be sealed)") }
            let nonce = Array(body[0..<12]), tag = Array(body[(body.count - 16)...])
            let sealed = UnsafeRawBufferPointer(rebasing: body[12..<(body.count - 16)])
            try ensurePlain(sealed.count)
            let opened = UnsafeMutableRawBufferPointer(rebasing: plain[0..<sealed.count])
            guard namer.open(sealed, into: opened, nonce: nonce, aad: name.raw, tag: tag) else {
                throw HostError(.corrupt, "\(problem) (authentication failed)")
            }
            // Decrypted in place of `plain`; move it to `buffer` so `plain` can take the decompressed bytes.
            UnsafeMutableRawBufferPointer(rebasing: buffer[0..<sealed.count]).copyMemory(from: UnsafeRawBufferPointer(opened))
            payload = UnsafeRawBufferPointer(rebasing: buffer[0..<sealed.count])
        }
        var chunk: UnsafeRawBufferPointer
        if suffix.hasPrefix(".zst") {
            guard let size = ZstdCodec.frameContentSize(payload), size <= 64 << 20 else {
                throw HostError(.corrupt, "\(problem) (not a zstd frame that declares its size)")
            }
            try ensurePlain(Int(size))
            let out = UnsafeMutableRawBufferPointer(rebasing: plain[0..<Int(size)])
            try zstd.decompress(payload, into: out, what: problem)
            chunk = UnsafeRawBufferPointer(out)
        } else {
            chunk = payload
        }
        guard namer.digest(chunk) == name else { throw HostError(.corrupt, "\(problem) (its content does not match its name)") }
        let digest = manifest.chunks.naming == "sha256" && store.keys == nil ? name : codec.digest(chunk)
        names[name] = digest
        counts.received += 1
        if batch.claim(digest) {
            let written = try codec.writeTemporary(chunk, digest: digest)
            try batch.add(temporary: written.path, digest: digest, blob: written.blob)
            counts.new += 1
        }
    }

    private func ensurePlain(_ count: Int) throws {
        guard count > plain.count else { return }
        plain.deallocate()
        plain = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
    }

    private func readIndex(_ body: UnsafeRawBufferPointer, path: String) throws {
        guard manifest != nil else { throw HostError(.corrupt, "\(what): the index comes before ARCHIVE.json") }
        var decoded = try RecoveryPointIndex.decode(Array(body), what: "\(what) \(path)")
        for stream in decoded.streams.indices {
            for entry in decoded.streams[stream].entries.indices where decoded.streams[stream].entries[entry].flag == .data {
                let name = decoded.streams[stream].entries[entry].digest
                guard let digest = names[name] else {
                    throw HostError(.corrupt, "\(what): the index needs chunk \(name.hex), which the archive does not hold before it")
                }
                decoded.streams[stream].entries[entry].digest = digest
            }
        }
        index = decoded
    }
}
