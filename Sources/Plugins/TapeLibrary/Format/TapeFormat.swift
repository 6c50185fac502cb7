import Foundation
import PluginAPI

/// # The dpm tape format, version 1
///
/// Every tape file is a POSIX pax archive (ustar headers plus 'x'/'g' extended headers,
/// GNU tar 1.34 `--format=posix` compatible) written in variable-block mode as records of
/// 262144 bytes (`tar -b 512`); the last record of a file may be shorter. No byte is
/// padded after a file's content. Anyone can read a tape with `mt` and GNU tar:
///
///     mt -f /dev/nst0 rewind; tar -b 512 -xvf /dev/nst0          # file 0: the label
///     mt -f /dev/nst0 asf 3;   tar -b 512 -tvf /dev/nst0          # list file 3
///
/// ## File 0: the label
/// Members `dpm-tape/label.json` (a `TapeLabel`) and `dpm-tape/README.txt` (how to restore
/// with tar, zstd and openssl alone), then the end-of-archive blocks. The label carries the
/// magic "dpm-tape", the format version 1, the tape's UUID and barcode, its media pool, the
/// media set and the tape's sequence number in it, the id of the dpm server that wrote it,
/// and the encryption descriptor (key fingerprint and wrapped key) of every archive on the
/// tape, or null when they are not encrypted: one tape never mixes the two, nor two keys.
///
/// ## Files 1…: archive volumes and catalogs
/// The host hands the tier one pax archive per recovery point (`dpm/<rp>/manifest.json`,
/// `dpm/<rp>/index.dpmidx`, `dpm/<rp>/chunks/<sha256>.zst`, each point self-contained).
/// Such an archive is stored as one or more *volumes*, each a tape file, followed (after the
/// last volume of each write session, and after a volume that fills a tape) by a *catalog
/// file*. A volume is one of two layouts:
///
/// 1. **Fresh volume** (the first volume, or a later one that starts between members):
///    a regular member `dpm-tape/volumes/<archive>.<sequence>.json` whose content is a
///    `VolumeDescription` and whose 'x' header repeats that JSON in the keyword
///    `SCHILY.xattr.user.dpm.volume` (GNU tar passes it silently), then the host's archive
///    bytes from `archive_offset` on.
/// 2. **GNU continuation** (a volume that continues a member split at early warning), the
///    layout `tar --format=posix -M` writes: a 'g' header with the records
///    `GNU.volume.filename=<member path>`, `GNU.volume.size=<bytes of the member left>` and
///    `GNU.volume.offset=<bytes of the member already on earlier volumes>`; an 'x' header
///    for `<dir>/GNUFileParts/<base>.<sequence>` with `path` and the same
///    `SCHILY.xattr.user.dpm.volume` keyword; a ustar header of that part (size = bytes
///    left); then the host's archive bytes from `archive_offset` (the rest of that member's
///    data, then the following members). `tar -M -f vol1 -f vol2` restores the split member.
///
/// The host archive's bytes of a volume are everything after that prefix up to the file's
/// filemark; concatenating the volumes of an archive in sequence order gives back exactly
/// the archive the host wrote. Its last volume holds the archive's end-of-archive blocks.
///
/// A catalog file holds one member `dpm-tape/catalog.json` (a `TapeCatalogFile`): every
/// file on the tape so far with its kind, archive, sequence, byte counts and whether the
/// archive is complete on it. The last catalog file on a tape is authoritative; when it is
/// missing (a session was killed), the volume descriptions at the start of each file say
/// the same, and an archive counts as complete only when a catalog lists its last volume.
enum TapeFormat {
    static let magic = "dpm-tape"
    static let version = 1
    static let recordSize = 262_144
    static let labelPath = "dpm-tape/label.json"
    static let readmePath = "dpm-tape/README.txt"
    static let catalogPath = "dpm-tape/catalog.json"
    static let volumeKeyword = "SCHILY.xattr.user.dpm.volume"

    static func volumePath(archive: String, sequence: Int) -> String {
        "dpm-tape/volumes/" + safeName(archive) + ".\(sequence).json"
    }

    /// A name usable as one path component.
    static func safeName(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    static func json<T: Encodable>(_ value: T) throws -> [UInt8] { [UInt8](try JSONCoding.encode(value, pretty: true)) }
    static func compactJSON<T: Encodable>(_ value: T) throws -> String { String(decoding: try JSONCoding.encode(value), as: UTF8.self) }

    /// File 0.
    static func labelFile(_ label: TapeLabel) throws -> [UInt8] {
        PaxMember.file(path: labelPath, content: try json(label), mtime: label.labelled)
            + PaxMember.file(path: readmePath, content: Array(TapeReadme.text(label).utf8), mtime: label.labelled)
            + PaxMember.endOfArchive
    }

    static func catalogFile(_ catalog: TapeCatalogFile) throws -> [UInt8] {
        PaxMember.file(path: catalogPath, content: try json(catalog), mtime: catalog.written) + PaxMember.endOfArchive
    }

    /// The prefix of a fresh volume.
    static func freshVolumePrefix(_ volume: VolumeDescription) throws -> [UInt8] {
        PaxMember.file(path: volumePath(archive: volume.archive, sequence: volume.sequence), content: try json(volume),
                       extra: [(volumeKeyword, try compactJSON(volume))], mtime: volume.written)
    }

    /// The prefix of a continuation volume for `member`, split `offset` bytes into its data.
    static func continuationPrefix(_ volume: VolumeDescription, member: PaxStreamScanner.Member, offset: UInt64) throws -> [UInt8] {
        let left = member.size - offset
        let directory = (member.path as NSString).deletingLastPathComponent
        let base = (member.path as NSString).lastPathComponent
        let partDirectory = (directory.isEmpty ? "" : directory + "/") + "GNUFileParts"
        let partPath = partDirectory + "/" + base + ".\(volume.sequence)"
        let global = PaxRecords.header(name: "dpm-tape/GlobalHead.\(volume.sequence)", typeflag: "g", records: [
            ("GNU.volume.filename", member.path), ("GNU.volume.size", String(left)), ("GNU.volume.offset", String(offset)),
        ])
        let extended = PaxRecords.header(name: partDirectory + "/PaxHeaders/" + base + ".\(volume.sequence)", typeflag: "x",
                                         records: [("path", partPath), (volumeKeyword, try compactJSON(volume))])
        var part = member.header
        part.name = String(partPath.utf8.prefix(100)) ?? partPath
        part.size = left
        part.mtime = 0
        part.typeflag = UInt8(ascii: "0")
        return global + extended + part.encoded()
    }
}

/// `dpm-tape/label.json` in file 0.
struct TapeLabel: Codable, Equatable {
    var magic = TapeFormat.magic
    var formatVersion = TapeFormat.version
    var uuid: String
    var barcode: String
    var pool: String
    var mediaSet: String
    var sequence: Int
    var serverId: String
    var labelled: Date
    /// The host's encryption descriptor ({"key_fingerprint":…,"wrapped_key":…}) of every
    /// archive on this tape, or nil when none is encrypted.
    var encryption: JSONValue?
}

/// The description at the start of every archive volume.
struct VolumeDescription: Codable, Equatable {
    var magic = TapeFormat.magic
    var formatVersion = TapeFormat.version
    var archive: String
    var datasource: String
    var datasourceName: String?
    var rp: String
    var time: Date
    var expires: Date
    var pool: String
    var colocate: Bool
    /// 1 for the first volume of the archive.
    var sequence: Int
    /// Where this volume's bytes start in the host's archive.
    var archiveOffset: UInt64
    var barcode: String
    var tapeUuid: String
    var mediaSet: String
    var serverId: String
    var written: Date
    var encryption: JSONValue?
    var summary: JSONValue?
}

/// `dpm-tape/catalog.json` of a catalog file.
struct TapeCatalogFile: Codable, Equatable {
    struct Entry: Codable, Equatable {
        enum Kind: String, Codable { case label, volume, catalog }
        var file: Int
        var kind: Kind
        var archive: String?
        var datasource: String?
        var rp: String?
        var sequence: Int?
        /// Host archive bytes in this file, and the bytes of the volume prefix before them.
        var bytes: UInt64?
        var prefixBytes: UInt64?
        var archiveOffset: UInt64?
        /// True on the archive's last volume (its total bytes are in `archiveBytes`).
        var last: Bool?
        var archiveBytes: UInt64?
    }

    var magic = TapeFormat.magic
    var formatVersion = TapeFormat.version
    var barcode: String
    var tapeUuid: String
    var serverId: String
    var written: Date
    var files: [Entry]
    /// Complete descriptions of the archives whose last volume is on this tape.
    var archives: [ArchiveDescription]
}
