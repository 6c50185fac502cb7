import Foundation
import PluginAPI

/// File attribute flags, as $STANDARD_INFORMATION and $FILE_NAME store them.
enum NTFSFileAttributes {
    static let readOnly: UInt32 = 0x0001, hidden: UInt32 = 0x0002, system: UInt32 = 0x0004
    static let archive: UInt32 = 0x0020, sparse: UInt32 = 0x0200, reparsePoint: UInt32 = 0x0400
    static let compressed: UInt32 = 0x0800, offline: UInt32 = 0x1000, encrypted: UInt32 = 0x4000
    static let recallOnDataAccess: UInt32 = 0x0040_0000
    /// Only in $FILE_NAME: the file is a directory (has an $I30 index).
    static let directory: UInt32 = 0x1000_0000
}

/// A $FILE_NAME attribute (type 0x30, always resident), or the key of a directory index entry,
/// which is a copy of it. A file has one per name: hard links add more, and a long name usually
/// comes with a DOS 8.3 alias.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 8 | file reference of the parent directory |
/// | 0x08 | 8 | creation time |
/// | 0x10 | 8 | modification time |
/// | 0x18 | 8 | MFT change time |
/// | 0x20 | 8 | access time |
/// | 0x28 | 8 | allocated size |
/// | 0x30 | 8 | data size |
/// | 0x38 | 4 | file attribute flags (0x10000000: directory) |
/// | 0x3C | 4 | extended-attribute size, or the reparse tag |
/// | 0x40 | 1 | name length in UTF-16 units (1…255) |
/// | 0x41 | 1 | namespace: 0 POSIX (case-sensitive, any character but NUL and '/'), 1 Win32, 2 DOS (8.3 alias), 3 Win32 and DOS (one name valid in both) |
/// | 0x42 | 2n | name, UTF-16LE |
///
/// The times and sizes here are only updated when the name changes (Windows); the reader takes
/// them from $STANDARD_INFORMATION and $DATA instead, and uses these only for an entry whose
/// MFT record cannot be read.
struct NTFSFileName {
    static let posix: UInt8 = 0, win32: UInt8 = 1, dos: UInt8 = 2, win32AndDOS: UInt8 = 3
    static let headerSize = 0x42

    let parent: UInt64
    let created: UInt64
    let modified: UInt64
    let changed: UInt64
    let accessed: UInt64
    let dataSize: UInt64
    let flags: UInt32
    let namespace: UInt8
    let units: [UInt16]
    let name: String

    var isDirectory: Bool { flags & NTFSFileAttributes.directory != 0 }
    var isDOSOnly: Bool { namespace == Self.dos }

    /// Parses a $FILE_NAME value of `bytes.count` bytes; `owner` names it in messages.
    init(_ bytes: [UInt8], owner: @autoclosure () -> String) throws {
        guard bytes.count >= Self.headerSize else {
            throw NTFSError.corrupt("\(owner()): $FILE_NAME of \(bytes.count) bytes is shorter than its \(Self.headerSize)-byte header")
        }
        let length = Int(bytes.u8(0x40))
        guard length > 0, Self.headerSize + 2 * length <= bytes.count else {
            throw NTFSError.corrupt("\(owner()): $FILE_NAME name of \(length) characters does not fit its \(bytes.count) bytes")
        }
        namespace = bytes.u8(0x41)
        guard namespace <= 3 else { throw NTFSError.corrupt("\(owner()): $FILE_NAME namespace \(namespace) is unknown") }
        parent = bytes.le64(0)
        created = bytes.le64(0x08)
        modified = bytes.le64(0x10)
        changed = bytes.le64(0x18)
        accessed = bytes.le64(0x20)
        dataSize = bytes.le64(0x30)
        flags = bytes.le32(0x38)
        units = NTFSName.units(bytes, at: Self.headerSize, count: length)
        name = NTFSName.string(units)
    }
}

/// $STANDARD_INFORMATION (type 0x10, resident): the times and attribute flags Windows shows.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 8 | creation time |
/// | 0x08 | 8 | modification time (data last written) |
/// | 0x10 | 8 | MFT change time (record last changed: the "ctime") |
/// | 0x18 | 8 | access time |
/// | 0x20 | 4 | file attribute flags (`NTFSFileAttributes`) |
/// | 0x24 | 12 | maximum versions, version, class id |
/// | 0x30 | 24 | (NTFS 3.x, value 0x48 bytes) owner id, security id, quota charged, USN |
///
/// Times are 100 ns intervals since 1601-01-01 UTC (see `NTFSTime`).
struct NTFSStandardInformation {
    let created: UInt64
    let modified: UInt64
    let changed: UInt64
    let accessed: UInt64
    let attributes: UInt32

    init(_ bytes: [UInt8], owner: @autoclosure () -> String) throws {
        guard bytes.count >= 0x24 else {
            throw NTFSError.corrupt("\(owner()): $STANDARD_INFORMATION of \(bytes.count) bytes is shorter than 36 bytes")
        }
        created = bytes.le64(0)
        modified = bytes.le64(0x08)
        changed = bytes.le64(0x10)
        accessed = bytes.le64(0x18)
        attributes = bytes.le32(0x20)
    }
}
