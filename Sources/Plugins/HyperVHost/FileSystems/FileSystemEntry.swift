import Foundation

/// One file, directory or link inside a guest file system, as item-level recovery sees it.
struct FileSystemEntry: Equatable {
    enum Kind: String, Codable { case file, directory, symlink, other }

    /// The name exactly as stored in the file system (decoded to Unicode). Never trusted as a
    /// host path: recovery sanitises it before writing anything.
    var name: String
    var kind: Kind
    var size: UInt64
    var modified: Date?
    var accessed: Date?
    var changed: Date?
    var created: Date?
    /// POSIX permission bits where the file system has them (ext4); nil elsewhere.
    var mode: UInt32?
    var uid: UInt32?
    var gid: UInt32?
    /// The target of a symbolic link.
    var linkTarget: String?
    /// The file system's own identifier (inode number, MFT record number, first cluster),
    /// for hard-link detection and for reopening the entry.
    var identifier: UInt64
    /// Set when the data cannot be read, with the reason (e.g. "NTFS-compressed file").
    var unreadable: String?
}

/// A read-only guest file system on a volume.
protocol GuestFileSystem: AnyObject {
    /// "ntfs", "ext4", "fat32".
    var type: String { get }
    /// The volume label, if any.
    var label: String? { get }
    /// The entries of a directory (without "." and ".."), given as a path of names from the
    /// root ("/", "/Windows/System32"). Name matching follows the file system's rules
    /// (case-insensitive on NTFS and FAT).
    func list(_ path: [String]) throws -> [FileSystemEntry]
    /// The entry at a path ([] is the root directory).
    func entry(_ path: [String]) throws -> FileSystemEntry
    /// Reads file data: exactly `buffer.count` bytes at `offset` (sparse parts read as zeros).
    func read(_ entry: FileSystemEntry, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    /// The byte ranges of the volume that hold a file's data (for excluding page files from
    /// backups); ranges in ascending order, relative to the start of the volume.
    func volumeExtents(of entry: FileSystemEntry) throws -> [Range<UInt64>]
}
