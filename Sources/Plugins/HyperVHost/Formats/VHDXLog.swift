import Foundation

/// Replays a VHDX log in memory (MS-VHDX 2.3), for read-only opens.
///
/// A VHDX writer records metadata changes (BAT, region table, metadata items) in the log before
/// applying them to the file, so a file closed uncleanly can hold a log whose changes never
/// reached their places. A non-zero LogGuid in the current header means such a log may exist;
/// any reader must apply it first. dpm never writes to the file: the changes go into a
/// `FileOverlay` that `FileReader` applies to every later read.
///
/// The log is a circular buffer of 4 KiB sectors at LogOffset, LogLength bytes long. An entry
/// starts on a sector boundary with this header (little-endian):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | Signature, ASCII `loge` |
/// | 4 | 4 | Checksum: CRC-32C over the whole entry (EntryLength bytes) with this field as zero |
/// | 8 | 4 | EntryLength, a multiple of 4 KiB |
/// | 12 | 4 | Tail: offset in the log of the first entry of the sequence this entry ends |
/// | 16 | 8 | SequenceNumber, non-zero; consecutive entries increase by one |
/// | 24 | 4 | DescriptorCount |
/// | 28 | 4 | reserved |
/// | 32 | 16 | LogGuid, equal to the header's LogGuid |
/// | 48 | 8 | FlushedFileOffset: the file was at least this long when the entry was written |
/// | 56 | 8 | LastFileOffset: the file is at least this long after the entry is applied |
///
/// 32-byte descriptors follow the header (126 fit in the first sector, 128 in each further
/// one, so an entry has `ceil((DescriptorCount + 2) / 128)` descriptor sectors):
/// - zero descriptor: `zero` (4), reserved (4), ZeroLength (8, multiple of 4 KiB),
///   FileOffset (8, multiple of 4 KiB), SequenceNumber (8): the range becomes zeros;
/// - data descriptor: `desc` (4), TrailingBytes (4), LeadingBytes (8), FileOffset (8, multiple
///   of 4 KiB), SequenceNumber (8): the 4 KiB at FileOffset get the next data sector.
///
/// Data sectors follow the descriptor sectors, one per data descriptor in order: `data` (4),
/// SequenceHigh (4), 4084 bytes, SequenceLow (4). The 4 KiB written are LeadingBytes, those 4084
/// bytes, then TrailingBytes; SequenceHigh:SequenceLow must equal the entry's sequence number.
///
/// Replay: find every valid entry; the active sequence ends at the valid entry with the highest
/// sequence number whose Tail leads, through entries with consecutive sequence numbers, to it.
/// Apply the entries of that sequence from its tail to its head, in order.
enum VHDXLog {
    static let sectorSize = 4096
    /// The largest log dpm reads into memory; Hyper-V and qemu use 1 MiB.
    static let maxLogLength: UInt64 = 64 << 20

    enum Operation {
        case data(offset: UInt64, bytes: [UInt8])
        case zero(offset: UInt64, length: UInt64)
    }

    struct Entry {
        var sector: Int
        var sectorCount: Int
        var sequenceNumber: UInt64
        var tail: Int
        var flushedFileOffset: UInt64
        var lastFileOffset: UInt64
        var operations: [Operation]
    }

    /// Replays the log named by `header` into `file.overlay`; returns the number of entries applied.
    static func replay(file: FileReader, header: VHDXHeader) throws -> Int {
        let path = file.path
        guard !header.logGuid.isZero, header.logLength > 0 else { return 0 }
        guard header.logVersion == 0 else {
            throw DiskError.unsupported(path, "log version \(header.logVersion) (dpm replays version 0)")
        }
        let mebibyte: UInt64 = 1 << 20
        let length = UInt64(header.logLength)
        guard header.logOffset >= mebibyte, header.logOffset % mebibyte == 0, length % mebibyte == 0 else {
            throw DiskError.corrupt(path, "log offset \(header.logOffset) or length \(length) is not a multiple of 1 MiB")
        }
        guard length <= maxLogLength else {
            throw DiskError.unsupported(path, "the log is \(length.byteDescription) and holds changes that must be replayed; dpm replays logs up to \(maxLogLength.byteDescription). Open the disk once in Hyper-V (or run qemu-img check -r all on a copy) to apply it")
        }
        guard let end = header.logOffset.plus(length), end <= file.physicalSize else {
            throw DiskError.corrupt(path, "the log (offset \(header.logOffset), length \(length)) extends past the end of the file (size \(file.physicalSize))")
        }
        let log = try file.readBytes(at: header.logOffset, count: Int(length))
        let sectorCount = log.count / sectorSize
        var entries: [Int: Entry] = [:]
        for sector in 0..<sectorCount where log.matches("loge", at: sector * sectorSize) {
            if let entry = parseEntry(log, at: sector, logGuid: header.logGuid) { entries[sector] = entry }
        }
        guard let sequence = activeSequence(entries, sectorCount: sectorCount) else { return 0 }
        var overlay = FileOverlay()
        var minimumSize = file.physicalSize
        for entry in sequence {
            guard entry.flushedFileOffset <= file.physicalSize else {
                throw DiskError.corrupt(path, "log entry \(entry.sequenceNumber) says the file was at least \(entry.flushedFileOffset) bytes when it was written, but it is \(file.physicalSize); the file was truncated and its log cannot be replayed")
            }
            for operation in entry.operations {
                switch operation {
                case .data(let offset, let bytes):
                    overlay.write(bytes, at: offset)
                    minimumSize = Swift.max(minimumSize, offset + UInt64(bytes.count))
                case .zero(let offset, let length):
                    overlay.zero(at: offset, length: length)
                    minimumSize = Swift.max(minimumSize, offset + length)
                }
            }
            minimumSize = Swift.max(minimumSize, entry.lastFileOffset)
        }
        overlay.minimumFileSize = minimumSize
        file.overlay = overlay
        return sequence.count
    }

    /// The sector `index` sectors after `start`, wrapping around the circular log.
    private static func sectorRange(_ start: Int, _ index: Int, count: Int) -> Range<Int> {
        let sector = (start + index) % count
        return sector * sectorSize..<(sector + 1) * sectorSize
    }

    /// Parses and fully validates the entry starting at `sector`; nil if it is not a valid entry.
    static func parseEntry(_ log: [UInt8], at sector: Int, logGuid: MSGUID) -> Entry? {
        let count = log.count / sectorSize
        let base = sector * sectorSize
        let entryLength = Int(log.le32(base + 8)), tail = Int(log.le32(base + 12))
        let sequence = log.le64(base + 16), descriptorCount = Int(log.le32(base + 24))
        guard entryLength > 0, entryLength % sectorSize == 0, entryLength <= log.count, sequence != 0,
              tail % sectorSize == 0, tail < log.count, MSGUID(log, at: base + 32) == logGuid else { return nil }
        let entrySectors = entryLength / sectorSize
        let descriptorSectors = (descriptorCount + 2 + 127) / 128
        guard descriptorSectors <= entrySectors else { return nil }
        var crc = CRC32C()
        for index in 0..<entrySectors {
            let range = sectorRange(sector, index, count: count)
            if index == 0 {
                crc.update(log, range: range.lowerBound..<range.lowerBound + 4)
                crc.updateZeros(4)
                crc.update(log, range: range.lowerBound + 8..<range.upperBound)
            } else {
                crc.update(log, range: range)
            }
        }
        guard crc.value == log.le32(base + 4) else { return nil }
        var operations: [Operation] = []
        var dataSector = descriptorSectors
        for index in 0..<descriptorCount {
            let position = 64 + 32 * index
            let at = sectorRange(sector, position / sectorSize, count: count).lowerBound + position % sectorSize
            let fileOffset = log.le64(at + 16)
            guard log.le64(at + 24) == sequence, fileOffset % UInt64(sectorSize) == 0 else { return nil }
            if log.matches("zero", at: at) {
                let length = log.le64(at + 8)
                guard length % UInt64(sectorSize) == 0, fileOffset.plus(length) != nil else { return nil }
                operations.append(.zero(offset: fileOffset, length: length))
            } else if log.matches("desc", at: at) {
                guard dataSector < entrySectors, fileOffset.plus(UInt64(sectorSize)) != nil else { return nil }
                let range = sectorRange(sector, dataSector, count: count)
                let high = UInt64(log.le32(range.lowerBound + 4)), low = UInt64(log.le32(range.upperBound - 4))
                guard log.matches("data", at: range.lowerBound), high << 32 | low == sequence else { return nil }
                var bytes = log.bytes(at + 8, 8)
                bytes += log[range.lowerBound + 8..<range.upperBound - 4]
                bytes += log.bytes(at + 4, 4)
                operations.append(.data(offset: fileOffset, bytes: bytes))
                dataSector += 1
            } else {
                return nil
            }
        }
        return Entry(sector: sector, sectorCount: entrySectors, sequenceNumber: sequence, tail: tail / sectorSize,
                     flushedFileOffset: log.le64(base + 48), lastFileOffset: log.le64(base + 56), operations: operations)
    }

    /// The entries of the active sequence, tail first; nil when no valid sequence exists.
    static func activeSequence(_ entries: [Int: Entry], sectorCount: Int) -> [Entry]? {
        let heads = entries.values.sorted { $0.sequenceNumber > $1.sequenceNumber }
        for head in heads {
            var sequence: [Entry] = []
            guard var current = entries[head.tail] else { continue }
            var steps = 0
            while steps <= sectorCount {
                sequence.append(current)
                if current.sector == head.sector && current.sequenceNumber == head.sequenceNumber { return sequence }
                let next = (current.sector + current.sectorCount) % sectorCount
                guard let following = entries[next], current.sequenceNumber < UInt64.max,
                      following.sequenceNumber == current.sequenceNumber + 1,
                      following.sequenceNumber <= head.sequenceNumber else { break }
                current = following
                steps += 1
            }
        }
        return nil
    }
}
