import Foundation
import Glibc

/// Read-only access to one image file through a file descriptor and `pread`.
///
/// Every read is exact: it fills the whole buffer or throws. Reads are patched with the
/// `overlay` (a replayed VHDX log), and the part of a read beyond the physical end of the file
/// but within `size` (which the overlay can extend) returns zeros. The descriptor is opened
/// `O_RDONLY | O_CLOEXEC | O_NONBLOCK` and closed when the reader is released; the file is never modified.
final class FileReader {
    let path: String
    /// The file's length on disk.
    let physicalSize: UInt64
    /// True when the file has holes (its allocated blocks are fewer than its length), so that
    /// `SEEK_DATA`/`SEEK_HOLE` can find ranges that read as zeros without reading them.
    let isSparse: Bool
    /// Replacement bytes from a replayed VHDX log.
    var overlay = FileOverlay()
    /// When true, a read running past the end of the file returns zeros for the missing part
    /// instead of failing (qcow2 allows the last cluster to end beyond the file's end).
    var zeroFillPastEnd = false

    private let fd: Int32

    /// The logical file size: the physical size, or more if the replayed log extends the file.
    var size: UInt64 { Swift.max(physicalSize, overlay.minimumFileSize) }

    init(path: String) throws {
        self.path = path
        // O_NONBLOCK keeps a FIFO named by a damaged parent locator from blocking the open;
        // it has no effect on regular files and block devices.
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw DiskError.notFound(path, "file not found") }
            throw DiskError.io(path, "open", errno: code)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw DiskError.io(path, "stat", errno: code)
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            Glibc.close(fd)
            throw DiskError.invalid(path, "is a directory, not a disk image")
        }
        if info.st_mode & S_IFMT != S_IFREG && info.st_mode & S_IFMT != S_IFBLK {
            Glibc.close(fd)
            throw DiskError.invalid(path, "is neither a regular file nor a block device")
        }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            let code = errno
            Glibc.close(fd)
            throw DiskError.io(path, "seek", errno: code)
        }
        self.fd = fd
        physicalSize = UInt64(end)
        isSparse = info.st_mode & S_IFMT == S_IFREG && UInt64(max(0, info.st_blocks)) * 512 < physicalSize
    }

    deinit { Glibc.close(fd) }

    /// Fills `buffer` with the file's bytes at `offset`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count > 0, let base = buffer.baseAddress else { return }
        guard let end = offset.plus(UInt64(buffer.count)) else {
            throw DiskError.corrupt(path, "read at offset \(offset) overflows")
        }
        if end > size && !zeroFillPastEnd {
            throw DiskError.corrupt(path, "a read of \(buffer.count) bytes at offset \(offset) runs past the end of the file (size \(size))")
        }
        var done = 0
        let physicalEnd = Swift.min(end, physicalSize)
        if offset < physicalEnd {
            let wanted = Int(physicalEnd - offset)
            while done < wanted {
                let result = pread(fd, base + done, wanted - done, off_t(offset + UInt64(done)))
                if result < 0 {
                    if errno == EINTR { continue }
                    throw DiskError.io(path, "read of \(wanted - done) bytes at offset \(offset + UInt64(done))", errno: errno)
                }
                if result == 0 {
                    throw DiskError.io(path, "read at offset \(offset + UInt64(done)) (the file shrank while open)", errno: EIO)
                }
                done += result
            }
        }
        if done < buffer.count {
            (base + done).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - done)
        }
        overlay.apply(to: buffer, fileOffset: offset)
    }

    /// Reads `count` bytes at `offset` into a new array.
    func readBytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }

    /// Reads `count` bytes at `offset`, or nil when the range is not entirely inside the file.
    func readBytesIfPresent(at offset: UInt64, count: Int) throws -> [UInt8]? {
        guard let end = offset.plus(UInt64(count)), end <= size else { return nil }
        return try readBytes(at: offset, count: count)
    }

    /// The ranges of [offset, offset + length) that may hold non-zero bytes, ascending.
    ///
    /// Uses `SEEK_DATA`/`SEEK_HOLE`; when the file is not sparse, has an overlay, or the file
    /// system cannot answer, the whole range is returned (a safe over-approximation).
    func dataRuns(offset: UInt64, length: UInt64) -> [(offset: UInt64, length: UInt64)] {
        guard length > 0 else { return [] }
        let whole = [(offset: offset, length: length)]
        guard isSparse, overlay.isEmpty, let end = offset.plus(length),
              end <= UInt64(Int.max) else { return whole }
        let seekData: Int32 = 3, seekHole: Int32 = 4 // Linux values of SEEK_DATA / SEEK_HOLE
        var runs: [(offset: UInt64, length: UInt64)] = []
        let limit = Swift.min(end, physicalSize)
        var position = offset
        while position < limit {
            let data = lseek(fd, off_t(position), seekData)
            if data < 0 {
                if errno == ENXIO { break } // no data after `position`
                return whole
            }
            let dataStart = UInt64(data)
            if dataStart >= limit { break }
            let hole = lseek(fd, data, seekHole)
            if hole < 0 { return whole }
            let dataEnd = Swift.min(UInt64(hole), limit)
            guard dataEnd > dataStart else { return whole }
            runs.append((offset: dataStart, length: dataEnd - dataStart))
            position = dataEnd
        }
        return runs
    }
}
