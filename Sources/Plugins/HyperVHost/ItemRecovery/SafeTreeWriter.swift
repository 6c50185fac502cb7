import Foundation
import PluginAPI

/// Creates the recovered tree under one root folder through directory file descriptors
/// (`mkdirat`, `openat`, `symlinkat`, all with O_NOFOLLOW), never following a symbolic
/// link and never creating a name that is not a single, sanitised component: whatever the
/// guest file system holds, nothing is written outside the root.
final class SafeTreeWriter {
    let root: String
    let rootFD: Int32
    private(set) var renamed: [(from: String, to: String)] = []

    init(root: String) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError(.io, "cannot open recovery folder \(root): \(String(cString: strerror(errno)))") }
        self.root = root
        rootFD = fd
    }

    deinit { close(rootFD) }

    /// The safe name for `name` in a directory, recording the rename when there is one.
    func safeName(_ name: String, shownPath: String) -> String {
        let safe = SafeName.sanitise(name)
        if safe != name { renamed.append((shownPath + "/" + name, shownPath + "/" + safe)) }
        return safe
    }

    /// Opens (creating if needed) the directory `name` inside `parent`; refuses a symlink.
    func directory(_ name: String, in parent: Int32) throws -> Int32 {
        if mkdirat(parent, name, 0o755) != 0 && errno != EEXIST {
            throw PluginError(.io, "cannot create folder \(name) in \(root): \(String(cString: strerror(errno)))")
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw PluginError(.invalid, "\(name) in \(root) is not a folder dpm created (a link or a file is in the way)")
        }
        return fd
    }

    /// Creates a new file `name` in `parent` (a numbered name if it exists); returns its fd and name.
    func createFile(_ name: String, in parent: Int32, mode: mode_t = 0o644) throws -> (Int32, String) {
        var candidate = name
        for attempt in 1...1000 {
            let fd = openat(parent, candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 { return (fd, candidate) }
            guard errno == EEXIST else { throw PluginError(.io, "cannot create \(candidate) in \(root): \(String(cString: strerror(errno)))") }
            candidate = SafeName.sanitise("\(name) (\(attempt + 1))")
        }
        throw PluginError(.io, "too many files named \(name) in \(root)")
    }

    /// Creates a symbolic link. Its target is stored, never followed by dpm.
    func symlink(_ name: String, target: String, in parent: Int32) throws {
        guard symlinkat(target, parent, name) == 0 else {
            throw PluginError(.io, "cannot create link \(name) in \(root): \(String(cString: strerror(errno)))")
        }
    }

    /// Creates a hard link to a file this writer created earlier.
    func link(from directory: Int32, _ existing: String, to parent: Int32, _ name: String) -> Bool {
        linkat(directory, existing, parent, name, 0) == 0
    }

    /// Applies times (and, where the file system has them, permission bits without set-id).
    func finish(_ name: String, in parent: Int32, entry: FileSystemEntry) {
        if let mode = entry.mode, entry.kind != .symlink { fchmodat(parent, name, mode_t(mode & 0o777), 0) }
        var times = [timespec(), timespec()]
        // UTIME_OMIT from <sys/stat.h>: leave that time as it is.
        let omit = (1 << 30) - 2
        func spec(_ date: Date?) -> timespec {
            guard let date else { return timespec(tv_sec: 0, tv_nsec: omit) }
            let seconds = date.timeIntervalSince1970.rounded(.down)
            return timespec(tv_sec: Int(seconds), tv_nsec: Int((date.timeIntervalSince1970 - seconds) * 1e9))
        }
        times[0] = spec(entry.accessed ?? entry.modified)
        times[1] = spec(entry.modified)
        utimensat(parent, name, times, AT_SYMLINK_NOFOLLOW)
    }
}
