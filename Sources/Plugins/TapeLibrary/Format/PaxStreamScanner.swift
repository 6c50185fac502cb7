/// Follows the host's pax stream block by block, as it passes through a writer, so that the
/// writer knows where it may end a tape volume and how to continue on the next tape the way
/// GNU tar -M does.
///
/// It records one `Member` per archive member (its header group, with any 'x'/'g' headers,
/// and its data). Offsets are byte offsets in the host stream. Members are dropped once the
/// writer says everything before them is on tape (`forget(before:)`).
struct PaxStreamScanner {
    struct Member: Equatable {
        /// Where its header group starts (its first extended header, or its ustar header).
        var headerStart: UInt64
        /// Where its data starts and ends (the end padded to 512 bytes).
        var dataStart: UInt64
        var dataEnd: UInt64
        var path: String
        var size: UInt64
        var isRegular: Bool
        var header: TarHeader
    }

    /// Where a volume may end, at a block-aligned stream offset.
    enum Cut: Equatable {
        /// Between members (or in the end-of-archive blocks): the next volume starts fresh.
        case boundary
        /// Inside a regular member's data, `offset` bytes into it.
        case insideData(Member, offset: UInt64)
    }

    private(set) var members: [Member] = []
    /// Bytes consumed so far, and the bytes of the block being assembled.
    private(set) var consumed: UInt64 = 0
    private var partialBlock: [UInt8] = []
    /// The header group being read: its start, pending pax records, and extended data left.
    private var groupStart: UInt64?
    private var pendingPath: String?
    private var pendingSize: UInt64?
    private var extendedRemaining: UInt64 = 0
    private var extendedData: [UInt8] = []
    private var extendedIsLocal = false
    private var dataRemaining: UInt64 = 0
    /// Set once the end-of-archive zero block is seen.
    private(set) var endOfArchive: UInt64?
    /// Set when a block is not a valid header: the stream is then treated as opaque, and
    /// volumes end only at record boundaries.
    private(set) var opaqueFrom: UInt64?

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            if opaqueFrom != nil || endOfArchive != nil { consumed += UInt64(bytes.count - index); return }
            if dataRemaining > 0 && partialBlock.isEmpty {
                let skip = Int(min(UInt64(bytes.count - index), dataRemaining))
                dataRemaining -= UInt64(skip)
                consumed += UInt64(skip)
                index += skip
                continue
            }
            let take = min(TarHeader.blockSize - partialBlock.count, bytes.count - index)
            partialBlock += bytes[index..<(index + take)]
            index += take
            if partialBlock.count == TarHeader.blockSize {
                let block = partialBlock
                partialBlock = []
                consume(block)
                consumed += UInt64(TarHeader.blockSize)
            }
        }
    }

    private mutating func consume(_ block: [UInt8]) {
        let offset = consumed
        if dataRemaining > 0 {  // a block split across feeds, inside data
            dataRemaining -= UInt64(TarHeader.blockSize)
            return
        }
        if extendedRemaining > 0 {
            let take = Int(min(extendedRemaining, UInt64(TarHeader.blockSize)))
            if extendedIsLocal { extendedData += block[0..<take] }
            extendedRemaining -= UInt64(take)
            if extendedRemaining == 0 && extendedIsLocal {
                for (key, value) in PaxRecords.decode(extendedData) ?? [] {
                    if key == "path" { pendingPath = value }
                    if key == "size" { pendingSize = UInt64(value) }
                }
                extendedData = []
            }
            return
        }
        if TarHeader.isZeroBlock(block[...]) && groupStart == nil {
            endOfArchive = offset
            return
        }
        guard let header = TarHeader.parse(block[...]) else {
            opaqueFrom = offset
            return
        }
        if groupStart == nil { groupStart = offset }
        if header.isExtended {
            extendedIsLocal = header.typeflag == UInt8(ascii: "x")
            extendedRemaining = header.size
            extendedData = []
            if header.size == 0 { extendedRemaining = 0 }
            return
        }
        let size = pendingSize ?? header.size
        let dataStart = offset + UInt64(TarHeader.blockSize)
        let padded = size + UInt64(TarHeader.padding(size))
        members.append(Member(headerStart: groupStart ?? offset, dataStart: dataStart, dataEnd: dataStart + padded,
                              path: pendingPath ?? header.name, size: size, isRegular: header.isRegular, header: header))
        dataRemaining = padded
        groupStart = nil
        pendingPath = nil
        pendingSize = nil
    }

    /// Drops members that end at or before `offset`.
    mutating func forget(before offset: UInt64) {
        members.removeAll { $0.dataEnd <= offset && $0.headerStart < offset }
    }

    /// The first stream offset at or after `offset` where a volume may end, and how; nil when
    /// the scanner has not seen enough of the stream yet to say.
    func cleanCut(atOrAfter offset: UInt64) -> (UInt64, Cut)? {
        if let end = endOfArchive, offset >= end { return (offset, .boundary) }
        if let opaque = opaqueFrom, offset >= opaque { return (offset, .boundary) }
        for member in members {
            if offset <= member.headerStart { return (member.headerStart, .boundary) }
            if offset < member.dataStart {
                // Inside a header group: end after it, at the start of the data.
                if member.isRegular && member.size > 0 { return (member.dataStart, .insideData(member, offset: 0)) }
                continue
            }
            if offset < member.dataEnd {
                if member.isRegular { return (offset, .insideData(member, offset: offset - member.dataStart)) }
                continue
            }
        }
        if let end = endOfArchive, end >= offset { return (end, .boundary) }
        if groupStart == nil && extendedRemaining == 0 && dataRemaining == 0 && offset == consumed { return (offset, .boundary) }
        return nil
    }
}
