import Foundation
import PluginAPI

/// A read-only NTFS volume, for item-level recovery from VM disk backups.
///
/// Reads only through the `BlockSource`. Names are looked up case-insensitively through the
/// volume's $UpCase table; a directory lists each name of a file once, preferring Win32 and
/// POSIX names over DOS 8.3 aliases; hard links are entries with the same `identifier` (the MFT
/// record number). The root's metadata files ($MFT, $Bitmap, … : the reserved records 0–23) are
/// hidden from `list` unless asked for, but `entry(["$MFT"])` finds them.
///
/// File data: resident and non-resident $DATA, sparse runs and bytes past the valid data length
/// read as zeros, LZNT1-compressed files are decompressed. Encrypted (EFS) files and files whose
/// data lives elsewhere (deduplication, WOF, offline) are listed with `unreadable` set, and
/// reading them throws `.unsupported`. An entry whose MFT record is damaged is still listed,
/// from the directory's copy of its $FILE_NAME, with the error in `unreadable` (`entry` and
/// `read` throw that error); stale index entries (deleted or reused records) are left out.
/// Symbolic links, junctions and WSL links are `.symlink` entries with their target.
///
/// Calls are serialised by a lock; parsed records, streams and the last directory indexes
/// read are cached.
final class NTFSFileSystem: GuestFileSystem {
    static let rootRecord: UInt64 = 5, volumeRecord: UInt64 = 3, upcaseRecord: UInt64 = 10
    /// Records 0–23 are reserved for metadata.
    static let firstUserRecord: UInt64 = 24

    let type = "ntfs"
    private(set) var label: String?
    let volume: BlockSource
    let boot: NTFSBootSector
    let mft: NTFSMasterFileTable

    private let lock = NSLock()
    private var inodes: [UInt64: NTFSInode] = [:]
    private struct StreamKey: Hashable {
        let record: UInt64
        let name: String
    }
    private var streams: [StreamKey: NTFSStream] = [:]
    private var indexes: [UInt64: [NTFSIndexEntry]] = [:]
    private var upcaseTable: NTFSUpCase?

    /// True when the volume's first sector carries the NTFS OEM id ("NTFS    " at offset 3).
    static func probe(_ volume: BlockSource) -> Bool {
        guard volume.size >= 512, let sector = try? volume.bytes(at: 0, count: 512) else { return false }
        return NTFSBootSector.hasSignature(sector)
    }

    init(volume: BlockSource) throws {
        self.volume = volume
        boot = try NTFSBootSector.read(from: volume)
        mft = try NTFSMasterFileTable(volume: volume, boot: boot)
        let root = try inode(Self.rootRecord)
        guard root.isDirectory else { throw NTFSError.corrupt("the root directory (MFT record 5) is not a directory") }
        label = try? readLabel()
    }

    // MARK: GuestFileSystem

    func list(_ path: [String]) throws -> [FileSystemEntry] {
        try list(path, includeSystemFiles: false)
    }

    /// The entries of a directory; `includeSystemFiles` also lists the root's metadata files.
    func list(_ path: [String], includeSystemFiles: Bool) throws -> [FileSystemEntry] {
        lock.lock()
        defer { lock.unlock() }
        let (directory, _, ancestors) = try resolve(path)
        guard directory.isDirectory else { throw NTFSError.invalid("\(display(path)) is not a directory") }
        let hideSystem = directory.number == Self.rootRecord && !includeSystemFiles
        return try children(of: directory).compactMap { child in
            if hideSystem && child.recordNumber < Self.firstUserRecord && child.fileName.name.hasPrefix("$") { return nil }
            // NTFS has no directory hard links: an entry naming a directory on the path to
            // here is damage, and listing it would let a recursive walk loop forever.
            if ancestors.contains(child.recordNumber) { return nil }
            return describe(child)
        }
    }

    func entry(_ path: [String]) throws -> FileSystemEntry {
        lock.lock()
        defer { lock.unlock() }
        let (inode, name, _) = try resolve(path)
        return try describe(inode, name: name)
    }

    func read(_ entry: FileSystemEntry, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try read(entry, stream: "", at: offset, into: buffer)
    }

    /// Reads a named data stream (alternate data stream); "" is the file's main data.
    func read(_ entry: FileSystemEntry, stream name: String, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        lock.lock()
        defer { lock.unlock() }
        let what = "\(entry.name) (MFT record \(entry.identifier))"
        guard entry.kind != .directory else { throw NTFSError.invalid("\(what) is a directory") }
        let inode = try inode(entry.identifier)
        if let reason = try unreadableReason(inode) { throw NTFSError.unsupported("\(what): \(reason)") }
        guard let stream = try dataStream(inode, name: name) else {
            throw NTFSError.notFound("\(what) has no \(name.isEmpty ? "data" : "stream \"\(name)\"")")
        }
        try stream.read(at: offset, into: buffer)
    }

    func volumeExtents(of entry: FileSystemEntry) throws -> [Range<UInt64>] {
        lock.lock()
        defer { lock.unlock() }
        guard entry.kind != .directory else { return [] }
        return try dataStream(inode(entry.identifier), name: "")?.volumeExtents ?? []
    }

    /// The named data streams (alternate data streams) of a file, with their sizes.
    func namedStreams(of entry: FileSystemEntry) throws -> [(name: String, size: UInt64)] {
        lock.lock()
        defer { lock.unlock() }
        let inode = try inode(entry.identifier)
        return try inode.namedStreams.compactMap { name in try dataStream(inode, name: name).map { (name, $0.size) } }
    }

    // MARK: Paths and directories

    /// The file at `path`, the name it was found under ("" for the root) and the records of
    /// the directories on the way.
    private func resolve(_ path: [String]) throws -> (NTFSInode, String, Set<UInt64>) {
        var current = try inode(Self.rootRecord)
        var name = ""
        var walked: [String] = []
        var ancestors: Set<UInt64> = [Self.rootRecord]
        for component in path where !component.isEmpty {
            guard current.isDirectory else { throw NTFSError.invalid("\(display(walked)) is not a directory") }
            walked.append(component)
            let wanted = Array(component.utf16)
            // All names, DOS aliases included: "PROGRA~1" finds "Program Files".
            let candidates = try indexEntries(of: current).filter { $0.recordNumber != current.number }
            guard let match = candidates.first(where: { $0.fileName.units == wanted })
                    ?? candidates.first(where: { (upcaseTable ?? loadUpCase()).equal($0.fileName.units, wanted) }) else {
                throw NTFSError.notFound("\(display(walked)) not found")
            }
            current = try inode(match.recordNumber)
            guard match.sequence == 0 || current.base.sequence == match.sequence else {
                throw NTFSError.corrupt("\(display(walked)): the directory entry refers to MFT record \(match.recordNumber) sequence \(match.sequence), which now has sequence \(current.base.sequence)")
            }
            name = match.fileName.name
            ancestors.insert(current.number)
        }
        return (current, name, ancestors)
    }

    /// The names in a directory: its index entries without the entry for itself (the root
    /// names itself "."), and without DOS 8.3 aliases of files that also have a long name here.
    private func children(of directory: NTFSInode) throws -> [NTFSIndexEntry] {
        let all = try indexEntries(of: directory).filter { $0.recordNumber != directory.number }
        let longNamed = Set(all.filter { !$0.fileName.isDOSOnly }.map(\.recordNumber))
        return all.filter { !($0.fileName.isDOSOnly && longNamed.contains($0.recordNumber)) }
    }

    private func display(_ path: [String]) -> String { "/" + path.joined(separator: "/") }

    // MARK: Entries

    /// The entry for a directory entry, or nil for a stale one (the record was deleted, or
    /// reused with a new sequence number). A file whose record cannot be read is described from
    /// the index's copy of its $FILE_NAME, with the error as `unreadable`.
    private func describe(_ child: NTFSIndexEntry) -> FileSystemEntry? {
        do {
            let inode = try inode(child.recordNumber)
            if child.sequence != 0 && inode.base.sequence != child.sequence { return nil }
            return try describe(inode, name: child.fileName.name)
        } catch {
            if let record = try? mft.record(child.recordNumber), !record.isInUse || !record.isBase { return nil }
            let key = child.fileName
            return FileSystemEntry(name: key.name, kind: key.isDirectory ? .directory : .file, size: key.isDirectory ? 0 : key.dataSize,
                                   modified: NTFSTime.date(key.modified), accessed: NTFSTime.date(key.accessed),
                                   changed: NTFSTime.date(key.changed), created: NTFSTime.date(key.created),
                                   mode: nil, uid: nil, gid: nil, linkTarget: nil, identifier: child.recordNumber,
                                   unreadable: (error as? PluginError)?.message ?? "\(error)")
        }
    }

    private func describe(_ inode: NTFSInode, name: String) throws -> FileSystemEntry {
        let information = try inode.standardInformation()
        let reparse = try inode.reparsePoint(mft: mft)
        var entry = FileSystemEntry(name: name, kind: .other, size: 0,
                                    modified: information.flatMap { NTFSTime.date($0.modified) },
                                    accessed: information.flatMap { NTFSTime.date($0.accessed) },
                                    changed: information.flatMap { NTFSTime.date($0.changed) },
                                    created: information.flatMap { NTFSTime.date($0.created) },
                                    mode: nil, uid: nil, gid: nil, linkTarget: nil, identifier: inode.number, unreadable: nil)
        let data = try dataStream(inode, name: "")
        if let target = reparse?.linkTarget {
            entry.kind = .symlink
            entry.linkTarget = target
        } else if inode.isDirectory {
            entry.kind = .directory
        } else if let data {
            entry.kind = .file
            entry.size = data.size
            entry.unreadable = try unreadableReason(inode, information: information, reparse: reparse)
        }
        return entry
    }

    /// Why a file's data cannot be read, if it cannot.
    private func unreadableReason(_ inode: NTFSInode) throws -> String? {
        try unreadableReason(inode, information: inode.standardInformation(), reparse: inode.reparsePoint(mft: mft))
    }

    private func unreadableReason(_ inode: NTFSInode, information: NTFSStandardInformation?,
                                  reparse: NTFSReparsePoint?) throws -> String? {
        let attributes = information?.attributes ?? 0
        if let reason = reparse?.unreadableReason(attributes: attributes) { return reason }
        guard let data = try dataStream(inode, name: "") else { return nil }
        if data.isEncrypted || attributes & NTFSFileAttributes.encrypted != 0 {
            return "NTFS-encrypted file (EFS); its data can only be decrypted on Windows with the owner's key"
        }
        if data.isCompressed, let problem = data.compressionProblem { return "NTFS-compressed file; \(problem)" }
        return nil
    }

    // MARK: Caches

    private func inode(_ number: UInt64) throws -> NTFSInode {
        if let cached = inodes[number] { return cached }
        let loaded = try NTFSInode(number, mft: mft)
        if inodes.count >= 1024 { inodes.removeAll(keepingCapacity: true) }
        inodes[number] = loaded
        return loaded
    }

    /// The entries of a directory's index (a few directories are cached, so that looking up
    /// every file of a directory does not parse its index every time).
    private func indexEntries(of directory: NTFSInode) throws -> [NTFSIndexEntry] {
        if let cached = indexes[directory.number] { return cached }
        let entries = try NTFSDirectoryIndex.entries(of: directory, mft: mft)
        if indexes.count >= 8 { indexes.removeAll(keepingCapacity: true) }
        indexes[directory.number] = entries
        return entries
    }

    private func dataStream(_ inode: NTFSInode, name: String) throws -> NTFSStream? {
        let key = StreamKey(record: inode.number, name: name)
        if let cached = streams[key] { return cached }
        guard let stream = try inode.stream(NTFSAttribute.data, name: name, mft: mft) else { return nil }
        if streams.count >= 64 { streams.removeAll(keepingCapacity: true) }
        streams[key] = stream
        return stream
    }

    /// The volume's upcase table, or Unicode simple case mapping when $UpCase is unreadable.
    private func loadUpCase() -> NTFSUpCase {
        let table = (try? inode(Self.upcaseRecord).stream(NTFSAttribute.data, mft: mft)?
            .readAll(limit: NTFSUpCase.tableSize)).flatMap { try? NTFSUpCase(volumeTable: $0) } ?? NTFSUpCase.unicode
        upcaseTable = table
        return table
    }

    /// $VOLUME_NAME of $Volume (MFT record 3): the label, UTF-16LE, at most 32 characters.
    private func readLabel() throws -> String? {
        guard let value = try inode(Self.volumeRecord).pieces(NTFSAttribute.volumeName).first?.residentValue,
              !value.isEmpty, value.count <= 256 else { return nil }
        return NTFSName.string(NTFSName.units(value, at: 0, count: value.count / 2))
    }

    // MARK: Tests and tools

    /// The volume byte offset of MFT record `number`, when contiguous.
    func recordOffset(_ number: UInt64) -> UInt64? { mft.byteOffset(of: number) }
}
