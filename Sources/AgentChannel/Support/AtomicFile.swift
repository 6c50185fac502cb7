import Foundation
import Glibc

/// Whole-file writes that a crash never leaves half done: the bytes go to a temporary file
/// beside the target, which is fsynced, given its mode and renamed over the target; then the
/// folder is fsynced so the rename itself is durable.
enum AtomicFile {
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ChannelError.posix(.io, "cannot create \(temporary)") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let error = ChannelError.posix(.io, "cannot write \(temporary)")
                close(fd)
                unlink(temporary)
                throw error
            }
            written += result
        }
        // The umask may have narrowed the mode given to open(2); a key file must end up exactly 0600.
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let error = ChannelError.posix(.io, "cannot sync \(temporary)")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = ChannelError.posix(.io, "cannot rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        let folder = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
    }

    /// Creates `folder` (and its parents) with `mode` when it does not exist.
    static func ensureFolder(_ folder: String, mode: Int = 0o700) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: mode])
        } catch {
            throw ChannelError(.io, "cannot create folder \(folder)", cause: error)
        }
    }

    static func read(_ path: String) throws -> [UInt8]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ChannelError(.io, "cannot read \(path): permission denied or not a file")
        }
        return [UInt8](data)
    }
}
