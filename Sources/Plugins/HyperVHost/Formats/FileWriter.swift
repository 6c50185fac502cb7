import Foundation
import Glibc

/// Write access to a new image file, for the writers.
///
/// The file is created with mode 0644. An existing non-empty file is never overwritten (a
/// restore must not clobber a disk by accident); an existing empty regular file, such as one
/// made by `mkstemp`, is reused. `close` fsyncs before closing; after a failure the writer
/// leaves the partial file for the caller to delete.
final class FileWriter {
    let path: String
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        var fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 && errno == EEXIST {
            var info = stat()
            if stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_size == 0 {
                fd = Glibc.open(path, O_WRONLY | O_CLOEXEC)
            } else {
                throw DiskError.invalid(path, "already exists and is not empty; dpm does not overwrite existing disks")
            }
        }
        guard fd >= 0 else { throw DiskError.io(path, "create", errno: errno) }
        self.fd = fd
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Writes all of `data` at `offset`.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard let base = data.baseAddress, data.count > 0 else { return }
        guard fd >= 0 else { throw DiskError.invalid(path, "write after the image was finished") }
        var done = 0
        while done < data.count {
            let result = pwrite(fd, base + done, data.count - done, off_t(offset + UInt64(done)))
            if result < 0 {
                if errno == EINTR { continue }
                throw DiskError.io(path, "write of \(data.count - done) bytes at offset \(offset + UInt64(done))", errno: errno)
            }
            done += result
        }
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Sets the file's length (extending with a hole).
    func truncate(to size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw DiskError.io(path, "truncate to \(size) bytes", errno: errno) }
    }

    /// Flushes the file to stable storage and closes it.
    func close() throws {
        guard fd >= 0 else { return }
        let syncResult = fsync(fd)
        let syncError = errno
        Glibc.close(fd)
        fd = -1
        guard syncResult == 0 else { throw DiskError.io(path, "fsync", errno: syncError) }
    }
}

/// Finds the parts of a buffer that are not all zeros, so writers leave zeros unallocated.
enum ZeroScan {
    /// True when every byte of `data` is zero.
    static func isAllZero(_ data: UnsafeRawBufferPointer) -> Bool {
        guard let base = data.baseAddress else { return true }
        let count = data.count
        var index = 0
        while count - index >= 32 {
            let a = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let b = base.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
            let c = base.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
            let d = base.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            if a | b | c | d != 0 { return false }
            index += 32
        }
        while index < count {
            if base.load(fromByteOffset: index, as: UInt8.self) != 0 { return false }
            index += 1
        }
        return true
    }

    /// Calls `body(offset, length)` for each maximal run of `granularity`-sized pieces of `data`
    /// that are not all zeros, in order.
    static func forEachNonZeroRun(_ data: UnsafeRawBufferPointer, granularity: Int = 4096,
                                  _ body: (Int, Int) throws -> Void) rethrows {
        var runStart: Int?
        var index = 0
        while index < data.count {
            let length = Swift.min(granularity, data.count - index)
            let zero = isAllZero(UnsafeRawBufferPointer(rebasing: data[index..<index + length]))
            if zero, let start = runStart {
                try body(start, index - start)
                runStart = nil
            } else if !zero && runStart == nil {
                runStart = index
            }
            index += length
        }
        if let start = runStart { try body(start, data.count - start) }
    }
}
