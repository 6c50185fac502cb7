import Foundation
import PluginAPI

/// Copies items out of a recovery point into a folder: files and folders (keeping times
/// and, where the file system has them, permissions), whole volumes as raw images, and
/// whole virtual disks as raw images. Names are made safe first (SafeName) and created only
/// through SafeTreeWriter, so nothing lands outside the folder.
final class ItemExtractor {
    let browser: GuestBrowser
    let writer: SafeTreeWriter
    var call: HostCall { browser.call }
    private(set) var files = 0
    private(set) var directories = 0
    private(set) var bytes: UInt64 = 0
    private(set) var skipped: [(path: String, reason: String)] = []
    private var written: [String] = []
    /// Hard links: the first copy of each (volume, identifier), relative to the root.
    private var linked: [String: String] = [:]
    private var total: UInt64 = 0

    init(browser: GuestBrowser, directory: String) throws {
        self.browser = browser
        writer = try SafeTreeWriter(root: directory)
    }

    func extract(_ items: [String]) throws -> JSONValue {
        guard !items.isEmpty else { throw PluginError(.invalid, "name at least one --item PATH (browse the point to find them)") }
        for item in items {
            switch try browser.resolve(item) {
            case .root:
                throw PluginError(.invalid, "--item / is everything; name a disk (/disk0), a volume (/disk0/part1) or files")
            case .disk(let index):
                let name = writer.safeName("disk\(index).raw", shownPath: "")
                try copyRaw(try browser.disk(index), name: name, what: item)
            case .volume(let index, let volume):
                let name = writer.safeName("disk\(index)-\(volume.name).img", shownPath: "")
                try copyRaw(volume.source, name: name, what: item)
            case .item(_, let volume, let components):
                guard let fileSystem = volume.fileSystem else { throw browser.unreadable(volume) }
                let entry = try fileSystem.entry(components)
                let name = components.last.map { writer.safeName($0, shownPath: "") } ?? writer.safeName(volume.name, shownPath: "")
                try copy(entry, as: name, path: components, from: fileSystem, volume: volume.name, into: writer.rootFD,
                         relative: name, shown: item)
            }
        }
        return .object([
            "directory": .string(writer.root), "files": .number(Double(files)), "directories": .number(Double(directories)),
            "bytes": .number(Double(bytes)), "written": .array(written.prefix(1000).map { .string($0) }),
            "renamed": .array(writer.renamed.map { .object(["from": .string($0.from), "to": .string($0.to)]) }),
            "skipped": .array(skipped.map { .object(["path": .string($0.path), "reason": .string($0.reason)]) }),
        ])
    }

    /// Copies one entry (recursively for directories) into `parent`.
    /// - Parameter relative: where the entry goes, relative to the root, through folders this
    ///   extractor created (so a hard link to it can be made later without following links).
    func copy(_ entry: FileSystemEntry, as name: String, path: [String], from fileSystem: GuestFileSystem, volume: String,
              into parent: Int32, relative: String, shown: String, depth: Int = 0) throws {
        guard depth < 256 else { throw PluginError(.corrupt, "\(shown): folders nest more than 256 deep") }
        try call.checkCancelled()
        switch entry.kind {
        case .directory:
            let fd = try writer.directory(name, in: parent)
            defer { close(fd) }
            directories += 1
            for child in try fileSystem.list(path) {
                let childName = writer.safeName(child.name, shownPath: shown)
                do {
                    try copy(child, as: childName, path: path + [child.name], from: fileSystem, volume: volume, into: fd,
                             relative: relative + "/" + childName, shown: shown + "/" + child.name, depth: depth + 1)
                } catch let error as PluginError where error.code == .unsupported || error.code == .corrupt {
                    skipped.append((shown + "/" + child.name, error.message))
                }
            }
            writer.finish(name, in: parent, entry: entry)
        case .file:
            if let reason = entry.unreadable {
                skipped.append((shown, reason))
                return
            }
            let key = "\(volume):\(entry.identifier)"
            if let first = linked[key], writer.link(from: writer.rootFD, first, to: parent, name) {
                files += 1
                return
            }
            let (fd, created) = try writer.createFile(name, in: parent)
            do {
                try copyData(entry, from: fileSystem, to: fd, shown: shown)
                close(fd)
            } catch {
                close(fd)
                unlinkat(parent, created, 0)
                throw error
            }
            writer.finish(created, in: parent, entry: entry)
            linked[key] = (relative as NSString).deletingLastPathComponent.isEmpty ? created
                : (relative as NSString).deletingLastPathComponent + "/" + created
            files += 1
            written.append(shown)
        case .symlink:
            try writer.symlink(name, target: entry.linkTarget ?? "", in: parent)
            writer.finish(name, in: parent, entry: entry)
            files += 1
        case .other:
            skipped.append((shown, "not a regular file, folder or link (device, fifo or socket)"))
        }
    }

    func copyData(_ entry: FileSystemEntry, from fileSystem: GuestFileSystem, to fd: Int32, shown: String) throws {
        try copyStream(size: entry.size, to: fd, shown: shown) { offset, slice in try fileSystem.read(entry, at: offset, into: slice) }
    }

    /// Copies `size` bytes, read in 4 MiB pieces, into a sparse file; reports progress and
    /// stops when the call is cancelled.
    func copyStream(size: UInt64, to fd: Int32, shown: String, read: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let piece = 4 << 20
        var buffer = [UInt8](repeating: 0, count: piece)
        var offset: UInt64 = 0
        total += size
        while offset < size {
            let count = Int(min(UInt64(piece), size - offset))
            try buffer.withUnsafeMutableBytes { raw in
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<count])
                try read(offset, slice)
                try writeOrSkipZeros(fd, UnsafeRawBufferPointer(slice), at: offset, shown: shown)
            }
            offset += UInt64(count)
            bytes += UInt64(count)
            call.progress(done: bytes, total: total)
            try call.checkCancelled()
        }
        guard ftruncate(fd, off_t(size)) == 0 else { throw PluginError(.io, "cannot size \(shown) in \(writer.root)") }
    }

    /// Writes data, leaving all-zero pieces as holes (sparse files stay sparse).
    func writeOrSkipZeros(_ fd: Int32, _ data: UnsafeRawBufferPointer, at offset: UInt64, shown: String) throws {
        if data.allSatisfy({ $0 == 0 }) { return }
        var done = 0
        while done < data.count {
            let n = pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw PluginError(.io, "cannot write \(shown) into \(writer.root): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    /// A whole volume or disk as a raw (sparse) image.
    func copyRaw(_ source: BlockSource, name: String, what: String) throws {
        let (fd, _) = try writer.createFile(name, in: writer.rootFD)
        defer { close(fd) }
        try copyStream(size: source.size, to: fd, shown: what) { offset, slice in try source.read(at: offset, into: slice) }
        files += 1
        written.append(what)
    }
}
