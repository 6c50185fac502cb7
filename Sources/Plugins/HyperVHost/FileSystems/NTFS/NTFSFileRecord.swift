import Foundation
import PluginAPI

/// One FILE record of the master file table ($MFT), with its fixups removed and its attribute
/// records parsed.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | "FILE" ("BAAD": chkdsk found a torn write) |
/// | 0x04 | 2 | offset of the update sequence array (see `NTFSFixups`) |
/// | 0x06 | 2 | update sequence array entries: 1 + record size / 512 |
/// | 0x08 | 8 | $LogFile sequence number |
/// | 0x10 | 2 | sequence number: incremented each time the record is reused; file references carry it |
/// | 0x12 | 2 | hard link count |
/// | 0x14 | 2 | offset of the first attribute record |
/// | 0x16 | 2 | flags: 0x01 in use, 0x02 directory (has an $I30 index), 0x04 in $Extend, 0x08 view index |
/// | 0x18 | 4 | bytes in use (header, attributes and the 0xFFFFFFFF end marker, 8-aligned) |
/// | 0x1C | 4 | bytes allocated (the record size) |
/// | 0x20 | 8 | base record reference: 0 in a base record; an extension record (holding attributes that did not fit, listed in the base's $ATTRIBUTE_LIST) names its base |
/// | 0x28 | 2 | next attribute id |
/// | 0x2A | 2 | (NTFS 3.1) high part of the record number, usually 0 |
/// | 0x2C | 4 | (NTFS 3.1) this record's own number |
/// | 0x30 | … | (NTFS 3.1) update sequence array; NTFS 3.0 has it at 0x2A |
///
/// Attribute records (see `NTFSAttribute`) follow from the first-attribute offset, each
/// starting with its type and length, until the type 0xFFFFFFFF.
struct NTFSFileRecord {
    static let flagInUse: UInt16 = 0x01, flagDirectory: UInt16 = 0x02

    let number: UInt64
    let sequence: UInt16
    let linkCount: UInt16
    let flags: UInt16
    /// The base record reference as stored: 0 in a base record.
    let baseReference: UInt64
    let attributes: [NTFSAttribute]

    var isInUse: Bool { flags & Self.flagInUse != 0 }
    var isDirectory: Bool { flags & Self.flagDirectory != 0 }
    var isBase: Bool { baseReference == 0 }
    /// The record number of the base record, for extension records.
    var baseRecord: UInt64 { NTFSReference.record(baseReference) }

    /// Parses the raw bytes of MFT record `number` (fixups still applied); `clusterCount`
    /// bounds the runlists.
    init(_ raw: [UInt8], number: UInt64, clusterCount: UInt64) throws {
        var bytes = raw
        func what() -> String { "MFT record \(number)" }
        try NTFSFixups.apply(&bytes, magic: "FILE", what: what())
        self.number = number
        sequence = bytes.le16(0x10)
        linkCount = bytes.le16(0x12)
        flags = bytes.le16(0x16)
        baseReference = bytes.le64(0x20)
        let firstAttribute = Int(bytes.le16(0x14))
        let used = Int(bytes.le32(0x18))
        guard used >= 0x18 + 8, used <= bytes.count else {
            throw NTFSError.corrupt("\(what()): \(used) bytes in use does not fit the \(bytes.count)-byte record")
        }
        let usaEnd = Int(bytes.le16(4)) + 2 * Int(bytes.le16(6))
        guard firstAttribute >= usaEnd, firstAttribute <= used - 4 else {
            throw NTFSError.corrupt("\(what()): first attribute offset \(ntfsHex(firstAttribute)) lies outside the used part (\(used) bytes)")
        }
        if Int(bytes.le16(4)) >= 0x30 {
            // NTFS 3.1 records know their own number (0: not recorded): a mismatch means the
            // $MFT runlist or the volume is damaged and this is someone else's record.
            let stored = UInt64(bytes.le32(0x2C)) | UInt64(bytes.le16(0x2A)) << 32
            guard stored == number || stored == 0 else {
                throw NTFSError.corrupt("\(what()) says it is record \(stored) (damaged $MFT runlist or misplaced record)")
            }
        }
        var attributes: [NTFSAttribute] = []
        var offset = firstAttribute
        while true {
            guard offset <= used - 4 else {
                throw NTFSError.corrupt("\(what()): attribute list is not ended by 0xFFFFFFFF within the \(used) bytes in use")
            }
            let type = bytes.le32(offset)
            if type == NTFSAttribute.end { break }
            guard offset <= used - 8 else {
                throw NTFSError.corrupt("\(what()): attribute at offset \(ntfsHex(offset)) runs past the record")
            }
            let length = Int(bytes.le32(offset + 4))
            guard length >= 0x18, length % 8 == 0, length <= used - offset else {
                throw NTFSError.corrupt("\(what()): attribute at offset \(ntfsHex(offset)) (length \(length)) runs past the record")
            }
            attributes.append(try NTFSAttribute(record: bytes, offset: offset, length: length, recordNumber: number,
                                                clusterCount: clusterCount))
            offset += length
        }
        self.attributes = attributes
    }
}
