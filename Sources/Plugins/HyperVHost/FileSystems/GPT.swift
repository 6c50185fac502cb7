import Foundation
import PluginAPI

/// The GUID partition table (UEFI specification, chapter 5).
///
/// The primary header is at LBA 1, its entry array usually from LBA 2; a backup header is at
/// the last LBA with its entry array just before it. Header (little-endian):
///
///     0x00   8  signature "EFI PART"
///     0x08   4  revision (0x00010000)
///     0x0C   4  header size (92 ≤ n ≤ sector size)
///     0x10   4  CRC32 of the first `header size` bytes, this field taken as zero
///     0x18   8  LBA of this header
///     0x20   8  LBA of the other header
///     0x28   8  first usable LBA     0x30  8  last usable LBA
///     0x38  16  disk GUID
///     0x48   8  LBA of the partition entry array
///     0x50   4  number of entries    0x54  4  size of one entry (128 × 2^n)
///     0x58   4  CRC32 of the entry array (count × size bytes)
///
/// Entry: 0x00 type GUID (all zero: unused), 0x10 unique GUID, 0x20 first LBA, 0x28 last LBA
/// (inclusive), 0x30 attributes, 0x38 name (72 bytes UTF-16LE, NUL-padded).
///
/// GUIDs use Microsoft's mixed-endian layout (see `MSGUID`). The logical sector size is 512,
/// or 4096 when the header is found at byte 4096 instead.
enum GPT {
    static let maxEntries: UInt32 = 16_384
    static let maxArrayBytes: UInt64 = 4 << 20

    /// A header that passed every check, with its entry array.
    private struct Header {
        var lba: UInt64
        var alternateLBA: UInt64
        var entriesLBA: UInt64
        var entryCount: UInt32
        var entrySize: UInt32
        var entries: [UInt8]
    }

    /// True when "EFI PART" is at byte `offset`.
    private static func signature(_ disk: BlockSource, at offset: UInt64) -> Bool {
        offset <= disk.size && disk.size - offset >= 8
            && ((try? disk.bytes(at: offset, count: 8))?.matches("EFI PART", at: 0) ?? false)
    }

    /// The sector size whose primary (LBA 1) or, failing that, backup (last LBA) header carries
    /// the signature; nil when neither size has one.
    static func detectSectorSize(_ disk: BlockSource) -> Int? {
        for size: UInt64 in [512, 4096] where disk.size >= 3 * size && signature(disk, at: size) { return Int(size) }
        for size: UInt64 in [512, 4096] where disk.size >= 3 * size && signature(disk, at: (disk.size / size - 1) * size) { return Int(size) }
        return nil
    }

    /// Reads the table, falling back to the backup header when the primary is damaged.
    static func read(_ disk: BlockSource) throws -> PartitionTableReport {
        let sectorSize = detectSectorSize(disk) ?? 512
        let sectors = disk.size / UInt64(sectorSize)
        guard sectors >= 3 else { throw PluginError(.corrupt, "gpt: the disk (\(disk.size) bytes) is too small for a GPT") }
        var warnings: [String] = []
        let header: Header
        switch parseHeader(disk, lba: 1, sectorSize: sectorSize, sectors: sectors) {
        case .success(let primary):
            header = primary
            if case .failure(let problem) = parseHeader(disk, lba: primary.alternateLBA, sectorSize: sectorSize, sectors: sectors) {
                warnings.append("gpt: the backup header at LBA \(primary.alternateLBA) is damaged (\(problem)); the primary is intact")
            }
        case .failure(let primaryProblem):
            let backupLBA = sectors - 1
            switch parseHeader(disk, lba: backupLBA, sectorSize: sectorSize, sectors: sectors) {
            case .success(let backup):
                header = backup
                warnings.append("gpt: the primary header at LBA 1 is damaged (\(primaryProblem)); using the backup header at LBA \(backupLBA)")
            case .failure(let backupProblem):
                throw PluginError(.corrupt, "gpt: both headers are damaged: the primary at LBA 1 (\(primaryProblem)) and the backup at LBA \(backupLBA) (\(backupProblem)); the partition table cannot be read")
            }
        }
        var partitions: [Partition] = []
        let size = Int(header.entrySize)
        for slot in 0..<Int(header.entryCount) {
            let entry = header.entries.bytes(slot * size, size)
            let type = MSGUID(entry, at: 0)
            if type.isZero { continue }
            let first = entry.le64(0x20), last = entry.le64(0x28)
            guard first <= last, last < sectors else {
                warnings.append("gpt: entry \(slot + 1) has an impossible range (LBA \(first)...\(last) on a disk of \(sectors) sectors); skipped")
                continue
            }
            let units = (0..<36).map { entry.le16(0x38 + 2 * $0) }.prefix { $0 != 0 }
            let name = String(decoding: Array(units), as: UTF16.self)
            partitions.append(Partition(index: slot + 1, start: first * UInt64(sectorSize),
                                        size: (last - first + 1) * UInt64(sectorSize),
                                        type: type.description.uppercased(), name: name.isEmpty ? nil : name, scheme: "gpt"))
        }
        return PartitionTableReport(scheme: "gpt", sectorSize: sectorSize, partitions: partitions, warnings: warnings)
    }

    /// Reads and checks the header at `lba` and its entry array; the failure says what is wrong.
    private static func parseHeader(_ disk: BlockSource, lba: UInt64, sectorSize: Int, sectors: UInt64) -> Result<Header, Problem> {
        guard lba >= 1, lba < sectors else { return .failure(Problem("its LBA \(lba) is outside the disk")) }
        guard let raw = try? disk.bytes(at: lba * UInt64(sectorSize), count: sectorSize) else {
            return .failure(Problem("unreadable"))
        }
        guard raw.matches("EFI PART", at: 0) else { return .failure(Problem("no \"EFI PART\" signature")) }
        let headerSize = Int(raw.le32(0x0C))
        guard headerSize >= 92, headerSize <= sectorSize else { return .failure(Problem("header size \(headerSize) is not within 92...\(sectorSize)")) }
        var zeroed = Array(raw[0..<headerSize])
        zeroed.putLE32(0, at: 0x10)
        let stored = raw.le32(0x10), computed = CRC32.checksum(zeroed)
        guard stored == computed else { return .failure(Problem("header CRC32 is \(hex(stored)), computed \(hex(computed))")) }
        guard raw.le64(0x18) == lba else { return .failure(Problem("it says it is at LBA \(raw.le64(0x18))")) }
        let count = raw.le32(0x50), entrySize = raw.le32(0x54), entriesLBA = raw.le64(0x48)
        guard count <= maxEntries else { return .failure(Problem("\(count) entries exceed \(maxEntries)")) }
        guard entrySize >= 128, entrySize <= 4096, entrySize % 8 == 0 else { return .failure(Problem("entry size \(entrySize) is invalid")) }
        let arrayBytes = UInt64(count) * UInt64(entrySize)
        let arraySectors = arrayBytes.divideRoundingUp(UInt64(sectorSize))
        guard arrayBytes <= maxArrayBytes, entriesLBA >= 1, let arrayEnd = entriesLBA.plus(arraySectors), arrayEnd <= sectors else {
            return .failure(Problem("the entry array (LBA \(entriesLBA), \(count) × \(entrySize) bytes) does not fit on the disk"))
        }
        guard let entries = try? disk.bytes(at: entriesLBA * UInt64(sectorSize), count: Int(arrayBytes)) else {
            return .failure(Problem("the entry array is unreadable"))
        }
        let storedArray = raw.le32(0x58), computedArray = CRC32.checksum(entries)
        guard storedArray == computedArray else {
            return .failure(Problem("entry array CRC32 is \(hex(storedArray)), computed \(hex(computedArray))"))
        }
        return .success(Header(lba: lba, alternateLBA: raw.le64(0x20), entriesLBA: entriesLBA, entryCount: count,
                               entrySize: entrySize, entries: entries))
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    /// Why a GPT header was rejected (text for warnings and errors).
    struct Problem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// CRC-32 (IEEE 802.3, as zlib and UEFI compute it): reflected polynomial 0xEDB88320, initial
    /// value and final XOR 0xFFFFFFFF; the check value of "123456789" is 0xCBF43926.
    enum CRC32 {
        private static let table: [UInt32] = (0..<256).map { index -> UInt32 in
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            return crc
        }

        static func checksum(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            bytes.withUnsafeBufferPointer { buffer in
                table.withUnsafeBufferPointer { table in
                    for byte in buffer { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
                }
            }
            return ~crc
        }
    }
}
