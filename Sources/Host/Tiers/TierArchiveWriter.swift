import Foundation
import PluginAPI
import PaxArchive

/// Writes the tier archive of one recovery point (format: `TierArchiveManifest`) from the
/// disk store, never from the protected source.
///
/// Every chunk is read back from the store, decoded and checked against its digest before it
/// goes into the archive, so a long-term copy never carries damage the store already has:
/// the copy fails naming the chunk instead.
final class TierArchiveWriter {
    struct Options {
        var name: String
        var compress = true
        /// Encrypts the chunks, and names them by keyed digest.
        var encryption: TierEncryption?
        var key: TierKey? { encryption?.key }
    }

    struct Report: Codable, Sendable {
        var chunks = 0
        var plainBytes: UInt64 = 0
        var archiveBytes: UInt64 = 0
    }

    let store: ChunkStore
    var onProgress: ((UInt64, UInt64) -> Void)?

    init(store: ChunkStore) {
        self.store = store
    }

    func write(point: RecoveryPointRecord, source: DataSourceRecord, options: Options,
               sink: @escaping PaxWriter.Sink) throws -> (TierArchiveManifest, Report) {
        let index = try RecoveryPointIndex.load(store.directory + "/" + point.indexPath)
        // Distinct chunks in first-use order, with their lengths.
        var order: [(ChunkDigest, Int)] = []
        var seen = Set<ChunkDigest>()
        for stream in index.streams {
            for entry in stream.entries where entry.flag == .data && seen.insert(entry.digest).inserted {
                order.append((entry.digest, Int(entry.length)))
            }
        }
        let plainBytes = order.reduce(UInt64(0)) { $0 + UInt64($1.1) }
        let suffix = TierArchiveManifest.suffix(compressed: options.compress, encrypted: options.key != nil)
        let manifest = TierArchiveManifest(
            name: options.name, created: Date(), storeId: store.configuration.id,
            datasource: .init(id: source.id, name: source.name, provider: source.provider, kind: source.kind), point: point,
            chunks: .init(count: order.count, plainBytes: plainBytes, naming: options.key == nil ? "sha256" : "hmac-sha256", suffix: suffix),
            encryption: options.encryption?.descriptor)
        let folder = TierArchiveManifest.folder(datasource: source.id, rp: point.id)
        let writer = PaxWriter(sink: sink)
        let mtime = Int64(point.time.timeIntervalSince1970)
        func header(_ path: String, _ size: Int) -> TarHeader { TarHeader(path: "\(folder)/\(path)", size: UInt64(size), mtime: mtime) }
        let manifestBytes = [UInt8](try JSONCoding.encode(manifest))
        try writer.add(header("ARCHIVE.json", 0), manifestBytes)

        let codec = try store.makeCodec()
        let zstd = try ZstdCodec(level: 1)
        // Names are recomputed unless they already are plain SHA-256 (unencrypted store and archive).
        let renames = options.key != nil || store.keys != nil
        let namer = try Crypto(keys: options.key?.keys)
        let maxLength = order.map(\.1).max() ?? 0
        let plain = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, maxLength), alignment: 64)
        let packed = UnsafeMutableRawBufferPointer.allocate(byteCount: ZstdCodec.bound(max(1, maxLength)) + 28, alignment: 64)
        let sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: packed.count, alignment: 64)
        defer { plain.deallocate(); packed.deallocate(); sealed.deallocate() }
        var names: [ChunkDigest: ChunkDigest] = [:]
        var report = Report(chunks: order.count, plainBytes: plainBytes)
        var done: UInt64 = 0
        for (digest, length) in order {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: plain[0..<length])
            try codec.read(digest, into: chunk)
            let name = renames ? namer.digest(UnsafeRawBufferPointer(chunk)) : digest
            names[digest] = name
            var body = UnsafeRawBufferPointer(chunk)
            if options.compress {
                guard let size = zstd.compress(UnsafeRawBufferPointer(chunk), into: packed) else {
                    throw HostError(.internalError, "zstd could not compress chunk \(digest.hex)")
                }
                body = UnsafeRawBufferPointer(rebasing: packed[0..<size])
            }
            if options.key != nil {
                let nonce = try Crypto.randomBytes(12)
                let out = UnsafeMutableRawBufferPointer(rebasing: sealed[12..<12 + body.count])
                let tag = try namer.seal(body, into: out, nonce: nonce, aad: name.raw)
                for (offset, byte) in nonce.enumerated() { sealed[offset] = byte }
                for (offset, byte) in tag.enumerated() { sealed[12 + body.count + offset] = byte }
                body = UnsafeRawBufferPointer(rebasing: sealed[0..<12 + body.count + 16])
            }
            try writer.begin(header("chunks/\(name.hex)\(suffix)", body.count))
            try writer.write(body)
            try writer.end()
            done += UInt64(length)
            onProgress?(done, plainBytes)
            CrashPoint.hit("tier.chunk-archived")
        }

        var archived = index
        if renames {
            for stream in archived.streams.indices {
                for entry in archived.streams[stream].entries.indices where archived.streams[stream].entries[entry].flag == .data {
                    let digest = archived.streams[stream].entries[entry].digest
                    guard let name = names[digest] else { throw HostError(.internalError, "chunk \(digest.hex) was not archived") }
                    archived.streams[stream].entries[entry].digest = name
                }
            }
        }
        try writer.add(header("index.dpmidx", 0), try archived.encode())
        try writer.finish()
        report.archiveBytes = writer.bytesWritten
        return (manifest, report)
    }
}
