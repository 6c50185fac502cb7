import Foundation
import PluginAPI

/// A $REPARSE_POINT attribute (type 0xC0): a tag telling a file-system filter what the file is.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | reparse tag: bit 31 Microsoft-defined, bit 29 name surrogate (the file stands for another name) |
/// | 0x04 | 2 | length of the data that follows the 8-byte header (+16 for the GUID of non-Microsoft tags) |
/// | 0x06 | 2 | reserved |
/// | 0x08 | … | data (non-Microsoft tags: a 16-byte GUID first) |
///
/// Symbolic links (tag 0xA000000C) and junctions / mount points (0xA0000003) hold:
///
/// | data offset | size | field |
/// |---|---|---|
/// | 0x00 | 2 | substitute name offset, from the path buffer |
/// | 0x02 | 2 | substitute name length in bytes |
/// | 0x04 | 2 | print name offset, from the path buffer |
/// | 0x06 | 2 | print name length in bytes |
/// | 0x08 | 4 | (symbolic links only) flags: 1 = relative target |
/// | 0x0C / 0x08 | … | path buffer, UTF-16LE (the substitute name is an NT path such as `\??\C:\target`) |
///
/// WSL symbolic links (0xA000001D) hold a 4-byte version (2) and the UTF-8 target.
///
/// Several tags mean the data is not in the file's $DATA: deduplicated files (chunk store),
/// WOF-compressed files (CompactOS), single-instance storage, offline HSM files and cloud
/// placeholders that were never downloaded. Those are reported unreadable.
struct NTFSReparsePoint {
    static let symlink: UInt32 = 0xA000_000C, mountPoint: UInt32 = 0xA000_0003, wslSymlink: UInt32 = 0xA000_001D
    static let dedup: UInt32 = 0x8000_0013, wof: UInt32 = 0x8000_0017, sis: UInt32 = 0x8000_0007
    static let hsm: UInt32 = 0xC000_0004, hsm2: UInt32 = 0x8000_0006, wci: UInt32 = 0x8000_0018

    let tag: UInt32
    /// The link target, for symbolic links, junctions and WSL links.
    let linkTarget: String?

    init(_ bytes: [UInt8], owner: @autoclosure () -> String) throws {
        guard bytes.count >= 8 else {
            throw NTFSError.corrupt("\(owner()): $REPARSE_POINT of \(bytes.count) bytes is shorter than its 8-byte header")
        }
        tag = bytes.le32(0)
        let dataLength = Int(bytes.le16(4))
        guard 8 + dataLength <= bytes.count else {
            throw NTFSError.corrupt("\(owner()): reparse data of \(dataLength) bytes runs past the \(bytes.count)-byte attribute")
        }
        let data = Array(bytes[8..<8 + dataLength])
        switch tag {
        case Self.symlink, Self.mountPoint:
            let buffer = tag == Self.symlink ? 12 : 8
            guard data.count >= buffer else {
                throw NTFSError.corrupt("\(owner()): link reparse data of \(data.count) bytes is too short")
            }
            func name(_ offsetField: Int) throws -> String {
                let offset = Int(data.le16(offsetField)), length = Int(data.le16(offsetField + 2))
                guard length % 2 == 0, buffer + offset + length <= data.count else {
                    throw NTFSError.corrupt("\(owner()): link target (\(length) bytes at \(offset)) runs past the reparse data")
                }
                return NTFSName.string(NTFSName.units(data, at: buffer + offset, count: length / 2))
            }
            let printName = try name(4)
            var target = printName.isEmpty ? try name(0) : printName
            if target.hasPrefix("\\??\\") { target.removeFirst(4) }
            linkTarget = target
        case Self.wslSymlink:
            guard data.count >= 4 else { throw NTFSError.corrupt("\(owner()): WSL link reparse data is too short") }
            linkTarget = String(decoding: data[4...], as: UTF8.self)
        default:
            linkTarget = nil
        }
    }

    /// Why the data of a file with this reparse point cannot be read from its $DATA, if so;
    /// `attributes` are its $STANDARD_INFORMATION flags.
    func unreadableReason(attributes: UInt32) -> String? {
        switch tag {
        case Self.dedup:
            return "NTFS deduplicated file (reparse tag \(ntfsHex(tag))); its data is in the volume's deduplication chunk store, which this reader does not read"
        case Self.wof:
            return "NTFS WOF-compressed file (CompactOS, reparse tag \(ntfsHex(tag))); XPRESS/LZX-compressed data is not supported"
        case Self.sis:
            return "NTFS single-instance-storage link (reparse tag \(ntfsHex(tag))); its data is in the SIS common store"
        case Self.wci:
            return "Windows container placeholder (reparse tag \(ntfsHex(tag))); its data is in a container layer"
        default:
            break
        }
        if attributes & (NTFSFileAttributes.offline | NTFSFileAttributes.recallOnDataAccess) != 0 {
            return "NTFS offline or cloud placeholder file (reparse tag \(ntfsHex(tag))); its data is not on this volume"
        }
        return nil
    }
}
