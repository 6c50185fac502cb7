import Glibc

/// Where a restored stream goes: a sparse regular file (written to a temporary name beside
/// it and renamed into place only when complete), or standard output, which gets every
/// byte in order, holes included.
final class Output {
    private let path: String?
    private let temporary: String?
    private let descriptor: Int32
    private var position: UInt64 = 0

    init(path: String?, size: UInt64) throws {
        self.path = path
        guard let path else {
            guard isatty(STDOUT_FILENO) == 0 else { throw Failure.usage("refusing to write a disk image to a terminal; use --output FILE") }
            temporary = nil
            descriptor = STDOUT_FILENO
            return
        }
        var status = stat()
        if stat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
            throw Failure.usage("--output \(path) exists and is not a regular file; to write to a device, omit --output and redirect standard output")
        }
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = "\(folder).\(name).restoring-\(getpid())"
        self.temporary = temporary
        descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure.damage("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            let reason = String(cString: strerror(errno))
            abandon()
            throw Failure.damage("cannot size \(temporary) to \(size) bytes: \(reason)")
        }
    }

    /// Writes `bytes` at `offset`; stream offsets only grow.
    func write(_ bytes: [UInt8], at offset: UInt64) throws {
        if temporary == nil { try zeros(upTo: offset) }
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                temporary == nil ? Glibc.write(descriptor, raw.baseAddress! + done, raw.count - done)
                                 : pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw Failure.damage("cannot write \(path ?? "standard output"): \(String(cString: strerror(errno)))") }
            done += count
        }
        position = offset + UInt64(bytes.count)
    }

    /// Completes the output: the trailing hole, fsync and the rename into place.
    func finish(size: UInt64) throws {
        guard let path, let temporary else { return try zeros(upTo: size) }
        guard fsync(descriptor) == 0, close(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure.damage("cannot write \(temporary): \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure.damage("cannot rename \(temporary) to \(path): \(reason)")
        }
    }

    /// Removes the incomplete output file after a failure.
    func abandon() {
        guard let temporary else { return }
        close(descriptor)
        unlink(temporary)
    }

    /// On standard output, a hole is written as zeros.
    private func zeros(upTo offset: UInt64) throws {
        let block = [UInt8](repeating: 0, count: 1 << 20)
        while position < offset {
            try write(Array(block.prefix(Int(min(UInt64(block.count), offset - position)))), at: position)
        }
    }
}
