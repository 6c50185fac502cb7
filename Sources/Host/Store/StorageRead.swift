import CLinux
import Foundation
import Glibc

/// Reads whole files from the storage under the file system instead of the page cache, for
/// the checks that must see what the disk holds: `dpm verify` and the initial replica's check.
/// Bytes a write has just put in the page cache prove nothing about the disk.
///
/// A file is read with `O_DIRECT` when the file system really does direct I/O for it: statx
/// (STATX_DIOALIGN) reports a usable offset alignment, or does not report one and the
/// `O_DIRECT` read succeeds. On ext4 an `O_DIRECT` read first writes the range's dirty pages
/// back, then reads the device. Otherwise — the file system refuses `O_DIRECT`, or reports an
/// alignment of 0 because it would serve `O_DIRECT` from the page cache (ext4 with
/// data=journal, inline data or fs-verity) — the file's dirty pages are written back
/// (fdatasync), its clean pages dropped (`posix_fadvise(DONTNEED)`) and it is read through the
/// cache. DONTNEED is advice: a page another process maps or locks stays cached. That is why
/// the two methods are counted apart and reported.
enum StorageRead {
    enum Method: Sendable {
        case direct
        case afterDroppingCache
    }

    /// Alignment of every `O_DIRECT` buffer, offset and length here: a multiple of the logical
    /// block size of the devices in use (512 or 4096 bytes).
    static let alignment = 4096

    /// The buffer size needed to read `bytes` bytes with `O_DIRECT`.
    static func capacity(for bytes: Int) -> Int { (bytes + alignment - 1) / alignment * alignment }

    /// Reads the first `size` bytes (the whole file) of the file open as `fd` (opened without
    /// `O_DIRECT`) into `buffer`, which must start on `alignment` and hold `capacity(for: size)`
    /// bytes. Leaves `O_DIRECT` off the descriptor when it returns.
    static func read(fd: Int32, path: String, size: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Method {
        guard buffer.count >= capacity(for: size), Int(bitPattern: buffer.baseAddress) % alignment == 0 else {
            throw HostError(.internalError, "reading \(path) from storage needs a \(alignment)-aligned buffer of \(capacity(for: size)) bytes")
        }
        var offsetAlignment: UInt32 = 0
        let reported = dpm_direct_io_alignment(fd, &offsetAlignment)
        let directUsable = reported != 1 || (offsetAlignment > 0 && alignment % Int(offsetAlignment) == 0)
        if directUsable, try readDirect(fd: fd, path: path, size: size, into: buffer) { return .direct }
        // fdatasync makes dirty pages clean (DONTNEED only drops clean ones); it fails with
        // EINVAL on files that cannot be synced (special files), which changes nothing here.
        guard fdatasync(fd) == 0 || errno == EINVAL else { throw HostError.posix("cannot write back", path: path) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        var done = 0
        while done < size {
            let n = pread(fd, buffer.baseAddress! + done, size - done, off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw HostError.posix("cannot read", path: path) }
            guard n > 0 else { throw HostError(.corrupt, "\(path) ends after \(done) of its \(size) bytes") }
            done += n
        }
        return .afterDroppingCache
    }

    /// The `O_DIRECT` read: false (and `O_DIRECT` off again) when the file system refuses it.
    private static func readDirect(fd: Int32, path: String, size: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | dpm_o_direct) == 0 else { return false }
        defer { _ = fcntl(fd, F_SETFL, flags) }
        let request = capacity(for: size)
        var done = 0
        while done < size {
            // Every request starts on the alignment; a short read mid-file (not seen on ext4 or
            // xfs, which read to the end or fail) is repeated from its aligned start.
            let start = done / alignment * alignment
            let n = pread(fd, buffer.baseAddress! + start, request - start, off_t(start))
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EINVAL { return false }
            guard n >= 0 else { throw HostError.posix("cannot read (O_DIRECT)", path: path) }
            guard n > 0 else { throw HostError(.corrupt, "\(path) ends after \(start) of its \(size) bytes") }
            done = start + n
        }
        return true
    }
}

/// How many files a check read from storage, by method.
public struct StorageReadCounts: Codable, Sendable, Equatable {
    /// Read with `O_DIRECT`: from the device, past the page cache.
    public var direct = 0
    /// Read after their cached pages were written back and dropped (posix_fadvise DONTNEED),
    /// because the file system does not do direct I/O for them.
    public var afterDroppingCache = 0
    /// The bytes of those files.
    public var bytes: UInt64 = 0

    public init() {}

    public var total: Int { direct + afterDroppingCache }

    mutating func count(_ method: StorageRead.Method, bytes: Int) {
        switch method {
        case .direct: direct += 1
        case .afterDroppingCache: afterDroppingCache += 1
        }
        self.bytes += UInt64(bytes)
    }

    mutating func add(_ other: StorageReadCounts) {
        direct += other.direct
        afterDroppingCache += other.afterDroppingCache
        bytes += other.bytes
    }

    /// How the files were read, in words: "with O_DIRECT", or both methods with their counts.
    public var method: String {
        let dropped = "after dropping their cached pages (posix_fadvise DONTNEED; the file system does no direct I/O for them)"
        switch (direct, afterDroppingCache) {
        case (_, 0): return "with O_DIRECT"
        case (0, _): return dropped
        default: return "with O_DIRECT (\(direct)) or \(dropped) (\(afterDroppingCache))"
        }
    }
}
