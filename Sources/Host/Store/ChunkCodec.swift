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
    private var scratch: UnsafeMutableRawBufferPointer
    private var sealed: UnsafeMutableRawBufferPointer
    /// For read-back checks of new chunks; allocated on first use.
    private var readBackStorage: UnsafeMutableRawBufferPointer?
    private var readBackBuffer: UnsafeMutableRawBufferPointer {
        if let readBackStorage { return readBackStorage }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: scratch.count, alignment: 64)
        readBackStorage = buffer
        return buffer
    }

    init(store: ChunkStore) throws {
        self.store = store
        crypto = try Crypto(keys: store.keys)
        zstd = try ZstdCodec(level: store.configuration.zstdLevel)
        let capacity = ZstdCodec.bound(store.chunkSize) + ChunkBlob.headerSize
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
        sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        scratch.deallocate()
        sealed.deallocate()
        readBackStorage?.deallocate()
    }

    public func digest(_ plain: UnsafeRawBufferPointer) -> ChunkDigest { crypto.digest(plain) }

    /// Encodes a chunk as a blob and writes it to a new temporary file in the store's tmp/
    /// directory, without syncing. Returns the temporary path and the blob's size.
    /// - Parameter readBack: read the file back and compare it byte for byte with the blob
    ///   just encoded (the initial replica's check that storage holds exactly what was
    ///   produced; `dpm verify` re-decodes and re-hashes instead).
    public func writeTemporary(_ plain: UnsafeRawBufferPointer, digest: ChunkDigest, readBack: Bool = false) throws -> (path: String, bytes: Int) {
        guard plain.count <= Int(UInt32.max) else { throw HostError(.invalid, "a chunk of \(plain.count) bytes is too large") }
        // Compress into scratch after the header; keep it only if it saves space.
        let body = UnsafeMutableRawBufferPointer(rebasing: scratch[ChunkBlob.headerSize...])
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
            if readBack { try compareWithFile(path, header: headerBytes, payload: payload) }
            // Start the write-back now, overlapping the disk with the rest of the backup;
            // the batch's syncfs then mostly waits for writes already under way.
            _ = dpm_start_writeback(fd, 0, 0)
        } catch {
            unlink(path)
            throw error
        }
        return (path, ChunkBlob.headerSize + payload.count)
    }

    /// Reads a just-written blob back and requires it to equal header + payload.
    func compareWithFile(_ path: String, header: [UInt8], payload: UnsafeRawBufferPointer) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HostError.posix("cannot reopen", path: path) }
        defer { close(fd) }
        let total = header.count + payload.count
        let check = UnsafeMutableRawBufferPointer(rebasing: readBackBuffer[0..<total])
        var done = 0
        while done < total {
            let n = pread(fd, check.baseAddress! + done, total - done, off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HostError(.io, "chunk file \(path) reads back short (\(done) of \(total) bytes)") }
            done += n
        }
        let matches = header.withUnsafeBytes { memcmp(check.baseAddress!, $0.baseAddress!, header.count) == 0 }
            && memcmp(check.baseAddress! + header.count, payload.baseAddress!, payload.count) == 0
        guard matches else { throw HostError(.io, "chunk file \(path) does not read back as written; check the storage under \(store.directory)") }
    }

    /// Reads a stored chunk into `destination` (exactly its plain length) and checks that it
    /// hashes to `digest`. Throws `corrupt` naming the chunk on any damage, `notFound` if missing.
    /// - Parameter path: where the blob is, when not yet under its name (a temporary file).
    public func read(_ digest: ChunkDigest, from path: String? = nil, into destination: UnsafeMutableRawBufferPointer) throws {
        let path = path ?? store.chunkPath(digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw HostError(code == ENOENT ? .corrupt : .io, "chunk \(digest.hex) is missing from the store (\(String(cString: strerror(code))))")
        }
        defer { close(fd) }
        let what = "chunk \(digest.hex)"
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw HostError.posix("cannot stat", path: path) }
        let size = Int(status.st_size)
        guard size >= ChunkBlob.headerSize, size <= scratch.count else {
            throw HostError(.corrupt, "\(what): file size \(size) is impossible for a chunk")
        }
        let file = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<size])
        var done = 0
        while done < size {
            let n = pread(fd, file.baseAddress! + done, size - done, off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HostError.posix("cannot read", path: path) }
            done += n
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
