import CLinux
import Foundation
import Glibc

/// Writes the streams of a recovery point as plain (sparse) files, in parallel: each
/// worker decodes whole chunks and writes them at their offsets; zero and excluded chunks
/// become holes. This is the host's own restore, used for `dpm recover --raw` and by
/// providers that hand restore back to the host.
public final class RawRestorer {
    public struct Report: Codable, Sendable {
        public var files: [String] = []
        public var bytes: UInt64 = 0
        public var chunksRead = 0
    }

    let store: ChunkStore
    let workers: Int
    public var onProgress: ((UInt64, UInt64) -> Void)?
    public var throttle: Throttle?

    public init(store: ChunkStore, workers: Int = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))) {
        self.store = store
        self.workers = workers
    }

    /// Restores stream `stream` of `index` into a new file at `path` (replaced if present).
    public func restore(index: RecoveryPointIndex, stream: Int, to path: String) throws -> Report {
        guard stream < index.streams.count else { throw HostError(.invalid, "no stream \(stream) in recovery point \(index.manifest.rp)") }
        let layout = index.streams[stream]
        let temporary = path + ".dpm-partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HostError.posix("cannot create", path: temporary) }
        var closed = false
        defer {
            if !closed { close(fd); unlink(temporary) }
        }
        guard ftruncate(fd, off_t(layout.size)) == 0 else { throw HostError.posix("cannot size", path: temporary) }
        // Whole, aligned chunks go straight to the disk (O_DIRECT): a restore's data is not
        // read again soon, and copying gigabytes through the page cache cost more CPU than
        // decoding them. Unaligned pieces (a disk's last chunk) and file systems without
        // O_DIRECT use the ordinary descriptor.
        let direct = open(temporary, O_WRONLY | dpm_o_direct | O_CLOEXEC)
        defer { if direct >= 0 { close(direct) } }
        let work = layout.entries.indices.filter { layout.entries[$0].flag == .data }
        let total = work.reduce(UInt64(0)) { $0 + UInt64(layout.entries[$1].length) }
        // Workers decode chunks in parallel; this thread alone writes them. Buffered writes to
        // one file serialise on its inode lock, and several writers only spin on it.
        let chunkBytes = max(1, layout.entries.map { Int($0.length) }.max() ?? 1)
        let free = BoundedQueue<UnsafeMutableRawBufferPointer>(capacity: workers * 2 + 2)
        var buffers: [UnsafeMutableRawBufferPointer] = []
        for _ in 0..<(workers * 2 + 2) {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
            buffers.append(buffer)
            free.push(buffer)
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        let decoded = BoundedQueue<(number: Int, buffer: UnsafeMutableRawBufferPointer)>(capacity: workers * 2 + 2)
        let lock = NSLock()
        var next = 0
        var failure: Error?
        let codecs = try (0..<workers).map { _ in try store.makeCodec() }
        let join = ThreadGroup.run(workers, name: "dpm-restore") { worker in
            while true {
                lock.lock()
                guard failure == nil, next < work.count else { lock.unlock(); return }
                let number = work[next]
                next += 1
                lock.unlock()
                guard let buffer = free.pop() else { return }
                let entry = layout.entries[number]
                do {
                    self.throttle?.wait(for: Int(entry.length))
                    try codecs[worker].read(entry.digest, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(entry.length)]))
                    decoded.push((number, buffer))
                } catch {
                    lock.lock()
                    if failure == nil { failure = error }
                    lock.unlock()
                    free.push(buffer)
                    decoded.close()
                    return
                }
            }
        }
        var done: UInt64 = 0
        var written = 0
        while written < work.count, let (number, buffer) = decoded.pop() {
            let entry = layout.entries[number]
            let target = UnsafeRawBufferPointer(rebasing: buffer[0..<Int(entry.length)])
            let offset = off_t(layout.start(ofEntry: number))
            let aligned = direct >= 0 && offset % 4096 == 0 && target.count % 4096 == 0
            var position = 0
            while position < target.count {
                let n = pwrite(aligned ? direct : fd, target.baseAddress! + position, target.count - position, offset + off_t(position))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    lock.lock()
                    failure = failure ?? HostError.posix("cannot write", path: temporary)
                    lock.unlock()
                    break
                }
                position += n
            }
            free.push(buffer)
            written += 1
            done += UInt64(entry.length)
            // Keep the disk busy with any buffered writes too, so the final fsync is short.
            if written % 16 == 0 && !aligned { _ = dpm_start_writeback(fd, 0, 0) }
            onProgress?(done, total)
            lock.lock()
            let failed = failure != nil
            lock.unlock()
            if failed { break }
        }
        free.close()
        decoded.close()
        join()
        if let failure { throw failure }
        guard written == work.count else { throw HostError(.internalError, "the restore of stream \(stream) stopped early") }
        guard fsync(fd) == 0 else { throw HostError.posix("cannot fsync", path: temporary) }
        close(fd)
        closed = true
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HostError.posix("cannot rename into place", path: path)
        }
        FileSystem.syncDirectory((path as NSString).deletingLastPathComponent)
        return Report(files: [path], bytes: layout.size, chunksRead: work.count)
    }
}
