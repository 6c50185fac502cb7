import Foundation
import PluginAPI

/// One attribute record inside an MFT FILE record.
///
/// Common header:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | type (0x10 $STANDARD_INFORMATION … 0x100; 0xFFFFFFFF ends the list) |
/// | 0x04 | 4 | length of this attribute record, header included |
/// | 0x08 | 1 | 0 resident (value inside the record), 1 non-resident (value in clusters) |
/// | 0x09 | 1 | name length in UTF-16 units (0: unnamed) |
/// | 0x0A | 2 | name offset, from the attribute start |
/// | 0x0C | 2 | flags: 0x00FF compression method (1 = LZNT1), 0x4000 encrypted (EFS), 0x8000 sparse |
/// | 0x0E | 2 | attribute id, unique within the file |
///
/// Resident attributes continue with:
///
/// | 0x10 | 4 | value length |
/// |---|---|---|
/// | 0x14 | 2 | value offset, from the attribute start |
/// | 0x16 | 1 | indexed flag |
///
/// Non-resident attributes continue with:
///
/// | 0x10 | 8 | lowest VCN held by this record (an attribute may be split over several records) |
/// |---|---|---|
/// | 0x18 | 8 | highest VCN held by this record (−1 when the attribute has no clusters) |
/// | 0x20 | 2 | offset of the runlist (mapping pairs), from the attribute start |
/// | 0x22 | 1 | compression unit, log2 of clusters (4: 16 clusters); 0 when not compressed |
/// | 0x28 | 8 | allocated size in bytes (valid where lowest VCN = 0) |
/// | 0x30 | 8 | data size: the logical length of the value |
/// | 0x38 | 8 | initialized size ("valid data length"): bytes past it read as zeros |
/// | 0x40 | 8 | compressed size (compressed or sparse attributes only) |
struct NTFSAttribute {
    static let standardInformation: UInt32 = 0x10, attributeList: UInt32 = 0x20, fileName: UInt32 = 0x30
    static let objectID: UInt32 = 0x40, securityDescriptor: UInt32 = 0x50, volumeName: UInt32 = 0x60
    static let volumeInformation: UInt32 = 0x70, data: UInt32 = 0x80, indexRoot: UInt32 = 0x90
    static let indexAllocation: UInt32 = 0xA0, bitmap: UInt32 = 0xB0, reparsePoint: UInt32 = 0xC0
    static let loggedUtilityStream: UInt32 = 0x100, end: UInt32 = 0xFFFF_FFFF

    static let flagCompressionMask: UInt16 = 0x00FF, flagEncrypted: UInt16 = 0x4000, flagSparse: UInt16 = 0x8000

    struct NonResident {
        var lowestVCN: UInt64
        var highestVCN: UInt64
        var compressionUnit: UInt8
        var allocatedSize: UInt64
        var dataSize: UInt64
        var initializedSize: UInt64
        var runs: [NTFSRun]
    }

    enum Content {
        case resident([UInt8])
        case nonResident(NonResident)
    }

    let type: UInt32
    let name: String
    let flags: UInt16
    let id: UInt16
    /// The MFT record holding this attribute record, and its offset there (for messages).
    let recordNumber: UInt64
    let offset: Int
    let content: Content

    var isCompressed: Bool { flags & Self.flagCompressionMask != 0 }
    var isEncrypted: Bool { flags & Self.flagEncrypted != 0 }
    var isSparse: Bool { flags & Self.flagSparse != 0 }
    var residentValue: [UInt8]? { if case .resident(let value) = content { return value } else { return nil } }
    var nonResident: NonResident? { if case .nonResident(let value) = content { return value } else { return nil } }

    /// "MFT record 64: $DATA:name attribute at offset 0x98".
    var description: String {
        "MFT record \(recordNumber): \(Self.typeName(type))\(name.isEmpty ? "" : ":" + name) attribute at offset \(ntfsHex(offset))"
    }

    static func typeName(_ type: UInt32) -> String {
        switch type {
        case standardInformation: return "$STANDARD_INFORMATION"
        case attributeList: return "$ATTRIBUTE_LIST"
        case fileName: return "$FILE_NAME"
        case objectID: return "$OBJECT_ID"
        case securityDescriptor: return "$SECURITY_DESCRIPTOR"
        case volumeName: return "$VOLUME_NAME"
        case volumeInformation: return "$VOLUME_INFORMATION"
        case data: return "$DATA"
        case indexRoot: return "$INDEX_ROOT"
        case indexAllocation: return "$INDEX_ALLOCATION"
        case bitmap: return "$BITMAP"
        case reparsePoint: return "$REPARSE_POINT"
        case 0xD0: return "$EA_INFORMATION"
        case 0xE0: return "$EA"
        case loggedUtilityStream: return "$LOGGED_UTILITY_STREAM"
        default: return "attribute type \(ntfsHex(type))"
        }
    }

    /// Parses the attribute record at `offset` of a FILE record whose used part ends at `limit`.
    /// The caller has checked that the type and length fields lie within `limit`.
    init(record: [UInt8], offset: Int, length: Int, recordNumber: UInt64, clusterCount: UInt64) throws {
        func here() -> String { "MFT record \(recordNumber): attribute at offset \(ntfsHex(offset))" }
        type = record.le32(offset)
        self.recordNumber = recordNumber
        self.offset = offset
        let nonResidentFlag = record.u8(offset + 8)
        let nameLength = Int(record.u8(offset + 9))
        let nameOffset = Int(record.le16(offset + 0x0A))
        flags = record.le16(offset + 0x0C)
        id = record.le16(offset + 0x0E)
        guard nonResidentFlag <= 1 else {
            throw NTFSError.corrupt("\(here()): non-resident flag is \(nonResidentFlag)")
        }
        let headerSize = nonResidentFlag == 0 ? 0x18 : 0x40
        guard length >= headerSize else {
            throw NTFSError.corrupt("\(here()): length \(length) is shorter than its \(headerSize)-byte header")
        }
        if nameLength > 0 {
            guard nameOffset >= 0x10, nameOffset + 2 * nameLength <= length else {
                throw NTFSError.corrupt("\(here()): name (\(nameLength) characters at \(ntfsHex(nameOffset))) runs past the attribute")
            }
            name = NTFSName.string(NTFSName.units(record, at: offset + nameOffset, count: nameLength))
        } else {
            name = ""
        }
        if nonResidentFlag == 0 {
            let valueLength = Int(record.le32(offset + 0x10))
            let valueOffset = Int(record.le16(offset + 0x14))
            guard valueOffset >= 0x18 || valueLength == 0, valueOffset <= length, valueLength <= length - valueOffset else {
                throw NTFSError.corrupt("\(here()): resident value (\(valueLength) bytes at \(ntfsHex(valueOffset))) runs past the attribute (\(length) bytes)")
            }
            content = .resident(record.bytes(offset + valueOffset, valueLength))
            return
        }
        let lowestVCN = record.le64(offset + 0x10)
        let highestVCN = record.le64(offset + 0x18)
        let runlistOffset = Int(record.le16(offset + 0x20))
        let compressionUnit = record.u8(offset + 0x22)
        let sizes = (record.le64(offset + 0x28), record.le64(offset + 0x30), record.le64(offset + 0x38))
        guard runlistOffset >= 0x40, runlistOffset <= length else {
            throw NTFSError.corrupt("\(here()): runlist offset \(ntfsHex(runlistOffset)) lies outside the attribute (\(length) bytes)")
        }
        let (type, name) = (type, name)
        func owner() -> String {
            "MFT record \(recordNumber): \(Self.typeName(type))\(name.isEmpty ? "" : ":" + name) attribute at offset \(ntfsHex(offset))"
        }
        let runs = try NTFSRunList.decode(record, range: (offset + runlistOffset)..<(offset + length), firstVCN: lowestVCN,
                                          clusterCount: clusterCount, owner: owner())
        let mappedEnd = runs.last?.endVCN ?? lowestVCN
        // highest VCN is −1 (all ones) for an attribute without clusters.
        guard highestVCN &+ 1 == mappedEnd, lowestVCN <= mappedEnd else {
            throw NTFSError.corrupt("\(owner()): header says VCN \(lowestVCN)–\(Int64(bitPattern: highestVCN)) but the runlist maps VCN \(lowestVCN)–\(Int64(bitPattern: mappedEnd) - 1)")
        }
        if lowestVCN == 0 {
            guard sizes.2 <= sizes.1, sizes.1 <= sizes.0 else {
                throw NTFSError.corrupt("\(owner()): sizes are inconsistent (allocated \(sizes.0), data \(sizes.1), initialized \(sizes.2) bytes)")
            }
        }
        guard compressionUnit <= 16 else {
            throw NTFSError.corrupt("\(owner()): compression unit 2^\(compressionUnit) clusters is out of range")
        }
        content = .nonResident(NonResident(lowestVCN: lowestVCN, highestVCN: highestVCN, compressionUnit: compressionUnit,
                                           allocatedSize: sizes.0, dataSize: sizes.1, initializedSize: sizes.2, runs: runs))
    }
}
