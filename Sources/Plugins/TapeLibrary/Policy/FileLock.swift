import CTape
import Foundation
import Glibc

/// An exclusive flock(2) on a lock file, held until `unlock` (or the process dies, which
/// releases it: a SIGKILLed job never leaves a lock behind).
///
/// The Host has its own lock type; plugins may not depend on Host, so this one is local.
final class FileLock {
    let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Waits for the lock.
    static func acquire(_ path: String) throws -> FileLock {
        let fd = try openLockFile(path)
        while dpm_flock(fd, dpm_lock_ex) != 0 {
            if errno == EINTR { continue }
            let error = TapeDeviceError.system("lock \(path)")
            Glibc.close(fd)
            throw error
        }
        return FileLock(path: path, fd: fd)
    }

    /// Takes the lock if nobody holds it, else returns nil.
    static func tryAcquire(_ path: String) throws -> FileLock? {
        let fd = try openLockFile(path)
        if dpm_flock(fd, dpm_lock_ex | dpm_lock_nb) != 0 {
            Glibc.close(fd)
            if errno == EWOULDBLOCK { return nil }
            throw TapeDeviceError.system("lock \(path)")
        }
        return FileLock(path: path, fd: fd)
    }

    /// Runs `body` holding the lock at `path`.
    static func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let lock = try acquire(path)
        defer { lock.unlock() }
        return try body()
    }

    private static func openLockFile(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TapeDeviceError.system("lock file \(path)") }
        return fd
    }

    func unlock() {
        guard fd >= 0 else { return }
        _ = dpm_flock(fd, dpm_lock_un)
        Glibc.close(fd)
        fd = -1
    }

    deinit { unlock() }
}

/// Small file helpers for the provider's JSON state files.
enum StateFile {
    /// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TapeDeviceError.system("write \(temporary)") }
        var failure: TapeDeviceError?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 { if errno == EINTR { continue }; failure = .system("write \(temporary)"); return }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = .system("fsync \(temporary)") }
        Glibc.close(fd)
        if let failure { unlink(temporary); throw failure }
        guard rename(temporary, path) == 0 else { throw TapeDeviceError.system("rename \(temporary) to \(path)") }
    }

    static func read(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
}
