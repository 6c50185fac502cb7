import Foundation
import Glibc

/// An advisory lock on a file (flock), released when the object goes away or the process
/// dies, so a crashed dpm never leaves a stale lock behind.
public final class FileLock {
    public let path: String
    private let fd: Int32

    public enum Mode { case shared, exclusive }

    /// Takes the lock, waiting for it when `wait` is true; nil when `wait` is false and
    /// another process holds a conflicting lock.
    public static func acquire(_ path: String, _ mode: Mode, wait: Bool) throws -> FileLock? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HostError.posix("cannot open lock file", path: path) }
        var operation = mode == .shared ? LOCK_SH : LOCK_EX
        if !wait { operation |= LOCK_NB }
        while flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { return nil }
            throw HostError.posix("cannot lock", path: path, errno: code)
        }
        return FileLock(path: path, fd: fd)
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Records who holds the lock, for the message another process prints.
    public func describeHolder(_ text: String) {
        ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// What the holder wrote with `describeHolder`.
    public static func holder(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
