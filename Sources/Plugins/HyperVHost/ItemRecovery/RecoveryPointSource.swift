import Foundation
import PluginAPI

/// One virtual disk of the recovery point bound to a call, as a block source: every read
/// goes to the host (`host->rp_read`), which fetches only the chunks it touches.
final class RecoveryPointSource: BlockSource {
    let call: HostCall
    let stream: Int
    let size: UInt64
    /// Bytes asked of the host, for reporting.
    private(set) var bytesRequested: UInt64 = 0

    init(call: HostCall, stream: Int, size: UInt64) {
        self.call = call
        self.stream = stream
        self.size = size
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw PluginError(.invalid, "read of \(buffer.count) bytes at \(offset) passes the end of disk \(stream) (\(size) bytes)")
        }
        bytesRequested += UInt64(buffer.count)
        try call.readRecoveryPoint(stream: stream, offset: offset, into: buffer)
    }
}

/// Small reads of file-system metadata (a few hundred bytes at a time) would each cost a
/// host call; this keeps the last few 64 KiB pages of a source.
final class CachedBlockSource: BlockSource {
    let base: BlockSource
    let pageSize: UInt64 = 64 << 10
    let capacity = 256
    private var pages: [UInt64: [UInt8]] = [:]
    private var order: [UInt64] = []

    init(_ base: BlockSource) { self.base = base }

    var size: UInt64 { base.size }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw PluginError(.invalid, "read of \(buffer.count) bytes at \(offset) passes the end (\(size) bytes)")
        }
        // Large reads (file data) bypass the cache.
        if buffer.count >= Int(pageSize) {
            try base.read(at: offset, into: buffer)
            return
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let page = position / pageSize
            let within = Int(position % pageSize)
            let bytes = try load(page)
            let count = min(buffer.count - done, bytes.count - within)
            guard count > 0 else { throw PluginError(.invalid, "read past the end at \(position)") }
            bytes.withUnsafeBytes { raw in
                (buffer.baseAddress! + done).copyMemory(from: raw.baseAddress! + within, byteCount: count)
            }
            done += count
        }
    }

    private func load(_ page: UInt64) throws -> [UInt8] {
        if let bytes = pages[page] { return bytes }
        let start = page * pageSize
        let count = Int(min(pageSize, size - start))
        let bytes = try base.bytes(at: start, count: count)
        pages[page] = bytes
        order.append(page)
        if order.count > capacity { pages[order.removeFirst()] = nil }
        return bytes
    }
}
