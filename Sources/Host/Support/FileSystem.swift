import Foundation

/// Small file-system operations with errors that name the path.
public enum FileSystem {
    public static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw HostError(.io, "cannot create directory \(path); check its parent's permissions", cause: error)
        }
    }

    public static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    public static func readFile(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HostError(exists(path) ? .io : .notFound, "cannot read \(path)")
        }
        return data
    }

    /// Writes a file atomically and durably: a temporary file beside it, fsync, rename,
    /// fsync of the directory. Readers see the old or the new content, never a mix.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HostError.posix("cannot create", path: temporary) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        try data.withUnsafeBytes { raw in
            try writeAll(fd: fd, raw, path: temporary)
        }
        guard fsync(fd) == 0 else { let e = errno; close(fd); throw HostError.posix("cannot fsync", path: temporary, errno: e) }
        close(fd)
        CrashPoint.hit("atomic.synced")
        guard rename(temporary, path) == 0 else { throw HostError.posix("cannot rename into place", path: path) }
        ok = true
        CrashPoint.hit("atomic.renamed")
        syncDirectory(directory)
    }

    /// Writes every byte, retrying short writes and EINTR.
    public static func writeAll(fd: Int32, _ raw: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw HostError.posix("cannot write", path: path)
            }
            done += n
        }
    }

    /// Makes a directory's entries (renames, creations) durable.
    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
