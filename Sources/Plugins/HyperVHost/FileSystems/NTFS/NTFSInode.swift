import Foundation
import PluginAPI

/// A file as a whole: its base MFT record plus the attribute records its $ATTRIBUTE_LIST places
/// in extension records.
///
/// Loading checks that the base record is in use and is a base record; that there is at most
/// one attribute list; that every extension record it names is in use, names this file as its
/// base, carries the sequence number the list expects, and has no attribute list of its own
/// (lists do not nest). Each extension record is read once however often the list names it, so
/// a list that loops back cannot make the load run forever; at most 4096 are read.
struct NTFSInode {
    static let maximumExtensionRecords = 4096

    let base: NTFSFileRecord
    /// Every attribute record of the file, base record first.
    let attributes: [NTFSAttribute]

    var number: UInt64 { base.number }
    var isDirectory: Bool { base.isDirectory }

    init(_ number: UInt64, mft: NTFSMasterFileTable) throws {
        let base = try mft.record(number)
        guard base.isInUse else {
            throw NTFSError.corrupt("MFT record \(number) is not in use (the file was deleted)")
        }
        guard base.isBase else {
            throw NTFSError.corrupt("MFT record \(number) is an extension of record \(base.baseRecord), not a file of its own")
        }
        try self.init(base: base, mft: mft)
    }

    /// Gathers the attributes of `base` (an in-use base record).
    init(base: NTFSFileRecord, mft: NTFSMasterFileTable) throws {
        self.base = base
        let number = base.number
        let lists = base.attributes.filter { $0.type == NTFSAttribute.attributeList }
        guard lists.count <= 1 else { throw NTFSError.corrupt("MFT record \(number) has \(lists.count) attribute lists") }
        guard let list = lists.first else {
            attributes = base.attributes
            return
        }
        let owner = "MFT record \(number): $ATTRIBUTE_LIST"
        let stream = try NTFSStream(pieces: [list], owner: owner, volume: mft.volume, clusterSize: mft.boot.clusterSize)
        let entries = try NTFSAttributeListEntry.parse(stream.readAll(limit: NTFSAttributeListEntry.maximumListSize), owner: owner)
        var gathered = base.attributes
        var loaded: Set<UInt64> = [number]
        for entry in entries where !loaded.contains(entry.recordNumber) {
            loaded.insert(entry.recordNumber)
            guard loaded.count <= Self.maximumExtensionRecords + 1 else {
                throw NTFSError.corrupt("\(owner) names more than \(Self.maximumExtensionRecords) extension records")
            }
            let record = try mft.record(entry.recordNumber)
            guard record.isInUse, !record.isBase, record.baseRecord == number else {
                throw NTFSError.corrupt("\(owner): MFT record \(entry.recordNumber) is not an extension record of this file")
            }
            guard record.sequence == entry.recordSequence || entry.recordSequence == 0 else {
                throw NTFSError.corrupt("\(owner): MFT record \(entry.recordNumber) has sequence \(record.sequence), the list expects \(entry.recordSequence) (stale list)")
            }
            guard !record.attributes.contains(where: { $0.type == NTFSAttribute.attributeList }) else {
                throw NTFSError.corrupt("MFT record \(entry.recordNumber): an extension record has an attribute list of its own")
            }
            gathered += record.attributes
        }
        attributes = gathered
    }

    /// The attribute records of one attribute (type and name; "" is unnamed).
    func pieces(_ type: UInt32, name: String = "") -> [NTFSAttribute] {
        attributes.filter { $0.type == type && $0.name == name }
    }

    /// One attribute as a stream, or nil when the file has no such attribute.
    func stream(_ type: UInt32, name: String = "", mft: NTFSMasterFileTable) throws -> NTFSStream? {
        let parts = pieces(type, name: name)
        guard !parts.isEmpty else { return nil }
        let owner = "MFT record \(number): \(NTFSAttribute.typeName(type))\(name.isEmpty ? "" : ":" + name)"
        return try NTFSStream(pieces: parts, owner: owner, volume: mft.volume, clusterSize: mft.boot.clusterSize)
    }

    /// The names of the file's named $DATA streams (alternate data streams).
    var namedStreams: [String] {
        var names: [String] = []
        for attribute in attributes where attribute.type == NTFSAttribute.data && !attribute.name.isEmpty
        && !names.contains(attribute.name) {
            names.append(attribute.name)
        }
        return names
    }

    func standardInformation() throws -> NTFSStandardInformation? {
        guard let attribute = pieces(NTFSAttribute.standardInformation).first else { return nil }
        guard let value = attribute.residentValue else {
            throw NTFSError.corrupt("\(attribute.description): $STANDARD_INFORMATION is not resident")
        }
        return try NTFSStandardInformation(value, owner: "MFT record \(number)")
    }

    func fileNames() throws -> [NTFSFileName] {
        try attributes.filter { $0.type == NTFSAttribute.fileName }.map { attribute in
            guard let value = attribute.residentValue else {
                throw NTFSError.corrupt("\(attribute.description): $FILE_NAME is not resident")
            }
            return try NTFSFileName(value, owner: attribute.description)
        }
    }

    func reparsePoint(mft: NTFSMasterFileTable) throws -> NTFSReparsePoint? {
        guard let stream = try stream(NTFSAttribute.reparsePoint, mft: mft) else { return nil }
        return try NTFSReparsePoint(stream.readAll(limit: 16 << 10), owner: stream.owner)
    }
}

/// One entry of an $ATTRIBUTE_LIST (type 0x20).
///
/// A file whose attributes do not fit its base MFT record keeps some of them in extension
/// records, and its base record then carries an $ATTRIBUTE_LIST naming, for every attribute
/// record of the file (those in the base record too), where it lives. A long runlist may be cut
/// into several attribute records, each listed with the VCN it starts at. The list itself may
/// be resident or non-resident. Entries:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0x00 | 4 | attribute type |
/// | 0x04 | 2 | entry length (8-aligned) |
/// | 0x06 | 1 | name length in UTF-16 units |
/// | 0x07 | 1 | name offset, from the entry start (0x1A) |
/// | 0x08 | 8 | starting VCN of the attribute record (0 for resident attributes) |
/// | 0x10 | 8 | file reference of the MFT record holding the attribute record |
/// | 0x18 | 2 | attribute id |
/// | 0x1A | … | name |
struct NTFSAttributeListEntry {
    let type: UInt32
    let name: String
    let startingVCN: UInt64
    let reference: UInt64
    let attributeID: UInt16

    var recordNumber: UInt64 { NTFSReference.record(reference) }
    var recordSequence: UInt16 { NTFSReference.sequence(reference) }

    /// The largest attribute list this reader loads (Windows' lists stay far below this).
    static let maximumListSize = 4 << 20
    static let headerSize = 0x1A

    /// Parses a whole attribute list value; `owner` names it in messages.
    static func parse(_ bytes: [UInt8], owner: String) throws -> [NTFSAttributeListEntry] {
        var entries: [NTFSAttributeListEntry] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let length = Int(bytes.le16(offset + 4))
            let nameLength = Int(bytes.u8(offset + 6))
            let nameOffset = Int(bytes.u8(offset + 7))
            if length == 0 && bytes.le32(offset) == 0 { break }  // zero padding at the end
            guard length >= headerSize, length <= bytes.count - offset else {
                throw NTFSError.corrupt("\(owner): entry at offset \(ntfsHex(offset)) has length \(length) and runs past the list (\(bytes.count) bytes)")
            }
            guard nameLength == 0 || (nameOffset >= headerSize && nameOffset + 2 * nameLength <= length) else {
                throw NTFSError.corrupt("\(owner): entry at offset \(ntfsHex(offset)) has a name outside the entry")
            }
            let name = nameLength == 0 ? "" : NTFSName.string(NTFSName.units(bytes, at: offset + nameOffset, count: nameLength))
            entries.append(NTFSAttributeListEntry(type: bytes.le32(offset), name: name, startingVCN: bytes.le64(offset + 8),
                                                  reference: bytes.le64(offset + 0x10), attributeID: bytes.le16(offset + 0x18)))
            offset += length
        }
        return entries
    }
}
