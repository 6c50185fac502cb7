import Foundation

/// The VHDX region table (MS-VHDX 2.2.3): where the BAT and the metadata region live.
///
/// Two identical 64 KiB copies sit at 192 KiB and 256 KiB. Layout (little-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | Signature, ASCII `regi` |
/// | 4 | 4 | Checksum: CRC-32C over the whole 64 KiB with this field taken as zero |
/// | 8 | 4 | EntryCount, at most 2047 |
/// | 12 | 4 | reserved |
/// | 16 + 32·i | 32 | entry i |
///
/// Each entry: Guid (16 bytes, `MSGUID`), FileOffset (8, a multiple of 1 MiB, at least 1 MiB),
/// Length (4, a multiple of 1 MiB), Required (4, bit 0: a reader that does not know this
/// region must refuse the file). The known regions are the BAT
/// `2DC27766-F623-4200-9D64-115E9BFD4A08` and the metadata region
/// `8B7CA206-4790-4B9A-B8FE-575F050F886E`; both must be present, once each. Regions must not
/// overlap each other or the header section.
struct VHDXRegionTable {
    static let offsets: [UInt64] = [192 * 1024, 256 * 1024]
    static let size = 64 * 1024
    static let maxEntries = 2047
    static let batGuid = MSGUID(0x2DC27766, 0xF623, 0x4200, [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08])
    static let metadataGuid = MSGUID(0x8B7CA206, 0x4790, 0x4B9A, [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E])

    struct Entry {
        var guid: MSGUID
        var fileOffset: UInt64
        var length: UInt32
        var required: Bool

        var end: UInt64 { fileOffset + UInt64(length) }
    }

    var bat: Entry
    var metadata: Entry
    var others: [Entry] = []

    /// Parses one 64 KiB copy; the failure string says why it was rejected.
    static func parse(_ bytes: [UInt8], path: String) throws -> Result<VHDXRegionTable, RejectReason> {
        guard bytes.count == size, bytes.matches("regi", at: 0) else { return .failure(RejectReason("bad signature")) }
        guard CRC32C.verify(bytes, fieldOffset: 4) else { return .failure(RejectReason("bad checksum")) }
        let count = Int(bytes.le32(8))
        guard count <= maxEntries else { return .failure(RejectReason("\(count) entries (at most \(maxEntries))")) }
        var bat: Entry?, metadata: Entry?, others: [Entry] = []
        var all: [Entry] = []
        let mebibyte: UInt64 = 1 << 20
        for index in 0..<count {
            let base = 16 + 32 * index
            let entry = Entry(guid: MSGUID(bytes, at: base), fileOffset: bytes.le64(base + 16),
                              length: bytes.le32(base + 24), required: bytes.le32(base + 28) & 1 != 0)
            guard entry.fileOffset >= mebibyte, entry.fileOffset % mebibyte == 0,
                  entry.length > 0, UInt64(entry.length) % mebibyte == 0,
                  entry.fileOffset.plus(UInt64(entry.length)) != nil else {
                return .failure(RejectReason("region \(entry.guid) has offset \(entry.fileOffset) and length \(entry.length), which are not positive multiples of 1 MiB past the header section"))
            }
            if let clash = all.first(where: { $0.fileOffset < entry.end && entry.fileOffset < $0.end }) {
                return .failure(RejectReason("regions \(clash.guid) and \(entry.guid) overlap"))
            }
            all.append(entry)
            if entry.guid == batGuid {
                guard bat == nil else { return .failure(RejectReason("two BAT regions")) }
                bat = entry
            } else if entry.guid == metadataGuid {
                guard metadata == nil else { return .failure(RejectReason("two metadata regions")) }
                metadata = entry
            } else if entry.required {
                throw DiskError.unsupported(path, "required region \(entry.guid) is not one dpm knows (only BAT and metadata)")
            } else {
                others.append(entry)
            }
        }
        guard let bat else { return .failure(RejectReason("no BAT region")) }
        guard let metadata else { return .failure(RejectReason("no metadata region")) }
        return .success(VHDXRegionTable(bat: bat, metadata: metadata, others: others))
    }

    /// Why a copy was rejected.
    struct RejectReason: Error { let text: String; init(_ text: String) { self.text = text } }

    /// Reads the first valid copy (the one at 192 KiB, else its copy at 256 KiB).
    static func read(from file: FileReader) throws -> VHDXRegionTable {
        var reasons: [String] = []
        for offset in offsets {
            switch try parse(try file.readBytes(at: offset, count: size), path: file.path) {
            case .success(let table): return table
            case .failure(let reason): reasons.append(reason.text)
            }
        }
        throw DiskError.corrupt(file.path, "both region tables are damaged (at 192 KiB: \(reasons[0]); at 256 KiB: \(reasons[1])); the file is damaged")
    }

    /// The 64 KiB on-disk form with a valid checksum (written twice by the writer).
    func serialized() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDXRegionTable.size)
        bytes.putASCII("regi", at: 0)
        let entries = [bat, metadata] + others
        bytes.putLE32(UInt32(entries.count), at: 8)
        for (index, entry) in entries.enumerated() {
            let base = 16 + 32 * index
            bytes.put(entry.guid.bytes, at: base)
            bytes.putLE64(entry.fileOffset, at: base + 16)
            bytes.putLE32(entry.length, at: base + 24)
            bytes.putLE32(entry.required ? 1 : 0, at: base + 28)
        }
        CRC32C.seal(&bytes, fieldOffset: 4)
        return bytes
    }
}
