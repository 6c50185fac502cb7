import CLinux
import Foundation
import Glibc

/// Hashes, compresses, seals, writes and reads chunks for one thread.
///
/// Holds its own OpenSSL and zstd contexts and scratch buffers, so it is not thread-safe:
/// the backup pipeline gives each worker its own.
public final class ChunkCodec {
    let store: ChunkStore
    let crypto: Crypto
    let zstd: ZstdCodec
    /// Holds one whole blob: compressed output when writing, the file when reading. Aligned
    /// and sized for O_DIRECT reads (StorageRead).
    private var scratch: UnsafeMutableRawBufferPointer
    private var sealed: UnsafeMutableRawBufferPointer
    /// The largest blob a chunk of the store's size can become.
    private let maximumBlobSize: Int
    /// The chunk files this codec read from storage (`read(…, source: .storage)` and
    /// `compareStored`), by method.
    private(set) var storageReads = StorageReadCounts()

    /// Where `read` takes a chunk file's bytes from.
    public enum ReadSource: Sendable {
        /// The ordinary read: the page cache when it holds the file (restores, browsing).
        case pageCache
        /// The storage under the file system (StorageRead): for checks.
        case storage
    }

    init(store: ChunkStore) throws {
        self.store = store
        crypto = try Crypto(keys: store.keys)
        zstd = try ZstdCodec(level: store.configuration.zstdLevel)
        maximumBlobSize = ZstdCodec.bound(store.chunkSize) + ChunkBlob.headerSize
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: StorageRead.capacity(for: maximumBlobSize), alignment: StorageRead.alignment)
        sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: maximumBlobSize, alignment: 64)
    }

    deinit {
        scratch.deallocate()
        sealed.deallocate()
    }

    public func digest(_ plain: UnsafeRawBufferPointer) -> ChunkDigest { crypto.digest(plain) }

    /// Encodes a chunk as a blob and writes it to a new temporary file in the store's tmp/
    /// directory, without syncing. Returns the temporary path and the blob's size and, when
    /// asked, its BlobChecksum (for `compareStored` once the blob is durable).
    public func writeTemporary(_ plain: UnsafeRawBufferPointer, digest: ChunkDigest,
                               checksum: Bool = false) throws -> (path: String, blob: WrittenBlob) {
        guard plain.count <= Int(UInt32.max) else { throw HostError(.invalid, "a chunk of \(plain.count) bytes is too large") }
        // Compress into scratch after the header; keep it only if it saves space.
        let body = UnsafeMutableRawBufferPointer(rebasing: scratch[ChunkBlob.headerSize..<maximumBlobSize])
        var payload = UnsafeRawBufferPointer(plain)
        var compressed = false
        // zstd gives up on incompressible input quickly (about 7 GB/s on random data here), so
        // every chunk is offered to it and kept compressed only when that saves space.
        if let size = zstd.compress(plain, into: body), size < plain.count {
            payload = UnsafeRawBufferPointer(rebasing: body[0..<size])
            compressed = true
        }
        var header = ChunkBlob.Header(compressed: compressed, encrypted: crypto.encrypts, plainLength: plain.count,
                                      payloadLength: payload.count, nonce: [], tag: [])
        if crypto.encrypts {
            header.nonce = try Crypto.randomBytes(12)
            let prefix = header.encode()
            let target = UnsafeMutableRawBufferPointer(rebasing: sealed[0..<payload.count])
            header.tag = try crypto.seal(payload, into: target, nonce: header.nonce, aad: ChunkBlob.Header.aad(digest: digest, header: prefix))
            payload = UnsafeRawBufferPointer(target)
        }
        let path = "\(store.temporaryDirectory)/chunk-\(digest.hex)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HostError.posix("cannot create", path: path) }
        defer { close(fd) }
        let headerBytes = header.encode()
        do {
            try headerBytes.withUnsafeBytes { try FileSystem.writeAll(fd: fd, $0, path: path) }
            try FileSystem.writeAll(fd: fd, payload, path: path)
            // Start the write-back now, overlapping the disk with the rest of the backup;
            // the batch's syncfs then mostly waits for writes already under way.
            _ = dpm_start_writeback(fd, 0, 0)
        } catch {
            unlink(path)
            throw error
        }
        let sum = checksum ? headerBytes.withUnsafeBytes { BlobChecksum.of(header: $0, payload: payload) } : nil
        return (path, WrittenBlob(bytes: ChunkBlob.headerSize + payload.count, checksum: sum))
    }

    /// Reads a stored chunk's blob from storage (StorageRead) and requires it to be exactly
    /// the blob written: its size and BlobChecksum. Throws `corrupt` naming the chunk otherwise.
    public func compareStored(_ digest: ChunkDigest, with written: WrittenBlob) throws {
        guard let expected = written.checksum else { throw HostError(.internalError, "chunk \(digest.hex) was written without a checksum") }
        let (fd, path, size) = try openStored(digest, from: nil)
        defer { close(fd) }
        guard size == written.bytes else {
            throw HostError(.corrupt, "chunk \(digest.hex): the file holds \(size) bytes, \(written.bytes) were written; check the storage under \(store.directory)")
        }
        storageReads.count(try StorageRead.read(fd: fd, path: path, size: size, into: scratch), bytes: size)
        let found = BlobChecksum.of(header: UnsafeRawBufferPointer(rebasing: scratch[0..<ChunkBlob.headerSize]),
                                    payload: UnsafeRawBufferPointer(rebasing: scratch[ChunkBlob.headerSize..<size]))
        guard found == expected else {
            throw HostError(.corrupt, "chunk \(digest.hex): storage returns other bytes than were written (checksum \(String(found, radix: 16)), "
                            + "written \(String(expected, radix: 16))); check the storage under \(store.directory)")
        }
    }

    /// Opens a stored chunk (or the blob at `path`) and checks its size is possible for a blob.
    private func openStored(_ digest: ChunkDigest, from path: String?) throws -> (fd: Int32, path: String, size: Int) {
        let path = path ?? store.chunkPath(digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw HostError(code == ENOENT ? .corrupt : .io, "chunk \(digest.hex) is missing from the store (\(String(cString: strerror(code))))")
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw HostError.posix("cannot stat", path: path, errno: code)
        }
        let size = Int(status.st_size)
        guard size >= ChunkBlob.headerSize, size <= maximumBlobSize else {
            close(fd)
            throw HostError(.corrupt, "chunk \(digest.hex): file size \(size) is impossible for a chunk")
        }
        return (fd, path, size)
    }

    /// Reads a stored chunk into `destination` (exactly its plain length) and checks that it
    /// hashes to `digest`. Throws `corrupt` naming the chunk on any damage, `notFound` if missing.
    /// - Parameters:
    ///   - path: where the blob is, when not yet under its name (a temporary file).
    ///   - source: `.storage` for checks, which must not be answered from the page cache.
    public func read(_ digest: ChunkDigest, from path: String? = nil, into destination: UnsafeMutableRawBufferPointer,
                     source: ReadSource = .pageCache) throws {
        let (fd, path, size) = try openStored(digest, from: path)
        defer { close(fd) }
        let what = "chunk \(digest.hex)"
        let file = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<size])
        switch source {
        case .storage:
            storageReads.count(try StorageRead.read(fd: fd, path: path, size: size, into: scratch), bytes: size)
        case .pageCache:
            var done = 0
            while done < size {
                let n = pread(fd, file.baseAddress! + done, size - done, off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw HostError.posix("cannot read", path: path) }
                done += n
            }
        }
        let header = try ChunkBlob.Header.decode(UnsafeRawBufferPointer(file), what: what)
        guard header.payloadLength == size - ChunkBlob.headerSize else {
            throw HostError(.corrupt, "\(what): payload is \(size - ChunkBlob.headerSize) bytes, header says \(header.payloadLength)")
        }
        guard header.plainLength == destination.count else {
            throw HostError(.corrupt, "\(what): holds \(header.plainLength) bytes, the index expects \(destination.count)")
        }
        guard header.encrypted == crypto.encrypts else {
            throw HostError(.corrupt, "\(what): encryption flag does not match the store")
        }
        var payload = UnsafeRawBufferPointer(rebasing: file[ChunkBlob.headerSize...])
        if header.encrypted {
            let opened = UnsafeMutableRawBufferPointer(rebasing: sealed[0..<payload.count])
            let prefix = Array(UnsafeRawBufferPointer(rebasing: file[0..<16]))
            guard crypto.open(payload, into: opened, nonce: header.nonce, aad: digest.raw + prefix, tag: header.tag) else {
                throw HostError(.corrupt, "\(what): authentication failed (damaged, or sealed with another key)")
            }
            payload = UnsafeRawBufferPointer(opened)
        }
        if header.compressed {
            try zstd.decompress(payload, into: destination, what: what)
        } else {
            guard payload.count == destination.count else { throw HostError(.corrupt, "\(what): stored length mismatch") }
            destination.copyMemory(from: payload)
        }
        guard crypto.digest(UnsafeRawBufferPointer(destination)) == digest else {
            throw HostError(.corrupt, "\(what): content does not match its digest")
        }
    }
}
