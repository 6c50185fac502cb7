import Foundation
import PluginAPI

/// A read-only ext2/ext3/ext4 file system (see `Ext4Superblock` … `Ext4Directory` for the
/// on-disk structures).
///
/// Supported: extent trees of any depth (unwritten extents read as zeros), ext2/3 block maps,
/// inline data (files and directories), linear and hashed directories, fast and slow
/// symlinks, holes, the 64-bit and meta_bg layouts, large inodes (nanosecond times, creation
/// time, 32-bit uid/gid). Entries carry `mode & 0o7777`, uid, gid and the four times; the
/// identifier is the inode number, so hard links share it.
///
/// `type` is "ext4" for ext2 and ext3 volumes too. The root entry (`entry([])`) has the name "".
/// `volumeExtents` lists the blocks holding the file's data (unwritten extents included, since
/// they belong to the file), not its extent-tree or indirect blocks, which are file-system
/// metadata a backup must keep. Metadata checksums are not verified: a damaged block is read
/// for what it still holds, and structural checks catch what would mislead the reader.
///
/// Not supported, and said so: encrypted (fscrypt) directories cannot be listed and encrypted
/// files are marked unreadable; file systems with the compression or dirdata features, or
/// unknown incompatible features, are refused. A volume whose journal needs recovery is read
/// as of its last checkpoint: the journal is not replayed (`needsJournalRecovery`).
final class Ext4FileSystem: GuestFileSystem {
    static let rootInode: UInt32 = 2
    /// Longer symlink targets mean a damaged inode (Linux allows at most one block, ≤ 64 KiB).
    static let maxLinkTarget: UInt64 = 65536

    let type = "ext4"
    let volume: Ext4Volume
    var label: String? { volume.superblock.label }
    /// True when the volume was not cleanly unmounted and its journal holds updates not yet
    /// written in place (typical of a crash-consistent backup of a running VM): recent changes
    /// may be missing from what this reader shows.
    var needsJournalRecovery: Bool { volume.superblock.needsRecovery }

    /// True when the volume carries an ext2/3/4 superblock.
    static func probe(_ volume: BlockSource) -> Bool {
        guard volume.size >= 2048, let raw = try? volume.bytes(at: Ext4Superblock.offset, count: 1024) else { return false }
        return Ext4Superblock.looksValid(raw)
    }

    init(volume source: BlockSource) throws {
        volume = try Ext4Volume(source)
        let root = try volume.inode(Ext4FileSystem.rootInode)
        guard root.isDirectory else {
            throw PluginError(.corrupt, "ext4: the root inode 2 is not a directory (mode 0o\(String(root.mode, radix: 8)))")
        }
    }

    func list(_ path: [String]) throws -> [FileSystemEntry] {
        let directory = try resolve(path)
        guard directory.isDirectory else { throw PluginError(.invalid, "ext4: \(show(path)) is not a directory") }
        return try names(in: directory, path: path).map { try makeEntry(name: $0.decodedName, number: $0.inode, fallbackKind: $0.kind) }
    }

    func entry(_ path: [String]) throws -> FileSystemEntry {
        let inode = try resolve(path)
        return try makeEntry(name: path.last ?? "", number: inode.number, fallbackKind: .directory)
    }

    func read(_ entry: FileSystemEntry, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let inode = try self.inode(of: entry)
        guard inode.isRegular || inode.isSymlink else {
            throw PluginError(.invalid, "ext4: inode \(inode.number) (\(entry.name)) is a \(inode.kind.rawValue), not a file")
        }
        try readData(inode, at: offset, into: buffer)
    }

    func volumeExtents(of entry: FileSystemEntry) throws -> [Range<UInt64>] {
        let inode = try self.inode(of: entry)
        if inode.hasInlineData || isFastSymlink(inode) { return [] }
        let limit: UInt64 = inode.usesExtents ? 1 << 32 : inode.size.divideRoundingUp(UInt64(volume.blockSize))
        let blockSize = UInt64(volume.blockSize)
        return try volume.runs(of: inode, blocks: 0..<limit)
            .map { $0.physical * blockSize..<($0.physical + $0.count) * blockSize }
            .mergedRanges()
    }

    // MARK: - Paths and entries

    private func show(_ path: [String]) -> String { "/" + path.joined(separator: "/") }

    /// The inode at `path`, following no symlinks.
    private func resolve(_ path: [String]) throws -> Ext4Inode {
        var current = try volume.inode(Ext4FileSystem.rootInode)
        for (depth, component) in path.enumerated() {
            let here = Array(path.prefix(depth))
            guard current.isDirectory else { throw PluginError(.invalid, "ext4: \(show(here)) is not a directory") }
            guard !component.isEmpty, component != ".", component != "..", !component.contains("/") else {
                throw PluginError(.invalid, "ext4: \(show(path)): invalid path component \"\(component)\"")
            }
            let names = try self.names(in: current, path: here)
            let wanted = Array(component.utf8)
            var match = names.first { $0.name == wanted } ?? names.first { $0.decodedName == component }
            if match == nil, current.flags & Ext4Inode.Flag.caseFold != 0 {
                match = names.first { $0.decodedName.lowercased() == component.lowercased() }
            }
            guard let match else { throw PluginError(.notFound, "ext4: \(show(Array(path.prefix(depth + 1)))): no such file or directory") }
            current = try volume.inode(match.inode)
        }
        return current
    }

    private func names(in directory: Ext4Inode, path: [String]) throws -> [Ext4DirectoryEntry] {
        if directory.isEncrypted {
            throw PluginError(.unsupported, "ext4: \(show(path)) is an encrypted (fscrypt) directory; dpm cannot decrypt its names")
        }
        return try Ext4Directory.entries(volume, directory: directory)
    }

    /// The inode an entry names, checked to still be the same kind of object.
    private func inode(of entry: FileSystemEntry) throws -> Ext4Inode {
        guard entry.identifier <= UInt64(UInt32.max) else {
            throw PluginError(.invalid, "ext4: \(entry.name): identifier \(entry.identifier) is not an inode number")
        }
        return try volume.inode(UInt32(entry.identifier))
    }

    /// An entry for inode `number`; an inode that cannot be read still yields an entry (with
    /// the kind from the directory record) marked unreadable, so one damaged inode does not
    /// hide its siblings.
    private func makeEntry(name: String, number: UInt32, fallbackKind: FileSystemEntry.Kind) throws -> FileSystemEntry {
        let inode: Ext4Inode
        do {
            inode = try volume.inode(number)
        } catch let error as PluginError {
            return FileSystemEntry(name: name, kind: fallbackKind, size: 0, identifier: UInt64(number), unreadable: error.message)
        }
        var entry = FileSystemEntry(name: name, kind: inode.kind, size: inode.size, modified: inode.modified,
                                    accessed: inode.accessed, changed: inode.changed, created: inode.created,
                                    mode: inode.permissions, uid: inode.uid, gid: inode.gid, identifier: UInt64(number))
        if inode.isEncrypted {
            entry.unreadable = "ext4: inode \(number) is encrypted (fscrypt); dpm cannot decrypt it"
        } else if inode.isSymlink {
            do {
                entry.linkTarget = String(decoding: try linkTarget(inode), as: UTF8.self)
            } catch let error as PluginError {
                entry.unreadable = error.message
            }
        }
        return entry
    }

    // MARK: - Data

    private func isFastSymlink(_ inode: Ext4Inode) -> Bool { inode.isFastSymlink(blockSize: volume.blockSize) }

    private func linkTarget(_ inode: Ext4Inode) throws -> [UInt8] {
        guard inode.size <= Ext4FileSystem.maxLinkTarget else {
            throw PluginError(.corrupt, "ext4: inode \(inode.number): symlink target of \(inode.size) bytes exceeds \(Ext4FileSystem.maxLinkTarget)")
        }
        var target = [UInt8](repeating: 0, count: Int(inode.size))
        try target.withUnsafeMutableBytes { try readData(inode, at: 0, into: $0) }
        return target
    }

    /// Reads file bytes [offset, offset + buffer.count), which must lie within the file.
    private func readData(_ inode: Ext4Inode, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let end = offset.plus(UInt64(buffer.count)), end <= inode.size else {
            throw PluginError(.invalid, "ext4: inode \(inode.number): read of \(buffer.count) bytes at \(offset) passes the end of the file (\(inode.size) bytes)")
        }
        guard buffer.count > 0, let base = buffer.baseAddress else { return }
        if inode.isEncrypted {
            throw PluginError(.unsupported, "ext4: inode \(inode.number) is encrypted (fscrypt); dpm cannot decrypt it")
        }
        if inode.hasInlineData || isFastSymlink(inode) {
            if !inode.hasInlineData && inode.size > 60 {
                throw PluginError(.corrupt, "ext4: inode \(inode.number): a symlink stored in the inode claims \(inode.size) bytes (at most 60 fit)")
            }
            let content = inode.hasInlineData ? try inode.inlineData() : Array(inode.blockArea.prefix(Int(inode.size)))
            content.withUnsafeBytes { base.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: buffer.count) }
            return
        }
        base.initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count)
        let blockSize = UInt64(volume.blockSize)
        for run in try volume.runs(of: inode, blocks: offset / blockSize..<end.divideRoundingUp(blockSize)) where !run.uninitialized {
            let runStart = run.logical * blockSize, runEnd = (run.logical + run.count) * blockSize
            let from = max(offset, runStart), to = min(end, runEnd)
            guard from < to else { continue }
            let slice = UnsafeMutableRawBufferPointer(start: base + Int(from - offset), count: Int(to - from))
            try volume.readData(block: run.physical, offset: from - runStart, into: slice)
        }
    }
}
