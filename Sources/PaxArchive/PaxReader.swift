/// Parses a POSIX pax archive pushed to it in pieces of any size, calling back for each
/// member: `onMember` with its header (pax records applied), `onData` with its bytes in
/// order, `onMemberEnd` after the last. 'x' and 'g' headers are consumed, never reported.
/// Parsing stops at the end-of-archive marker (two zero blocks); bytes after it (record
/// padding) are ignored.
public final class PaxReader {
    public var onMember: (TarHeader) throws -> Void = { _ in }
    public var onData: (UnsafeRawBufferPointer) throws -> Void = { _ in }
    public var onMemberEnd: () throws -> Void = {}
    /// The largest extended header accepted, so a damaged size cannot make it allocate.
    public var maxExtendedHeader = 1 << 20

    private enum State {
        case header
        case extended(remaining: Int, global: Bool)
        case data(remaining: UInt64)
        case padding(remaining: Int)
        case ended
    }

    private var state = State.header
    private var block: [UInt8] = []
    private var extendedBytes: [UInt8] = []
    private var pendingRecords: [String: String] = [:]
    private var globalRecords: [String: String] = [:]
    private var zeroBlocks = 0
    private var afterData: Int = 0
    /// Bytes consumed so far.
    public private(set) var offset: UInt64 = 0
    public var ended: Bool { if case .ended = state { return true } else { return false } }

    public init() {}

    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var position = 0
        while position < bytes.count {
            switch state {
            case .ended:
                offset += UInt64(bytes.count - position)
                return
            case .header:
                let take = min(TarHeader.blockSize - block.count, bytes.count - position)
                block += bytes[position..<position + take]
                position += take
                offset += UInt64(take)
                if block.count == TarHeader.blockSize { try headerComplete() }
            case .extended(let remaining, let global):
                let take = min(remaining, bytes.count - position)
                extendedBytes += bytes[position..<position + take]
                position += take
                offset += UInt64(take)
                if take == remaining {
                    let records = try TarHeader.parseRecords(extendedBytes, offset: offset)
                    if global { globalRecords.merge(records) { $1 } } else { pendingRecords.merge(records) { $1 } }
                    extendedBytes = []
                    state = .padding(remaining: afterData)
                } else {
                    state = .extended(remaining: remaining - take, global: global)
                }
            case .data(let remaining):
                let take = Int(min(remaining, UInt64(bytes.count - position)))
                try onData(UnsafeRawBufferPointer(rebasing: bytes[position..<position + take]))
                position += take
                offset += UInt64(take)
                if UInt64(take) == remaining {
                    try onMemberEnd()
                    state = .padding(remaining: afterData)
                } else {
                    state = .data(remaining: remaining - UInt64(take))
                }
            case .padding(let remaining):
                let take = min(remaining, bytes.count - position)
                position += take
                offset += UInt64(take)
                state = take == remaining ? .header : .padding(remaining: remaining - take)
            }
        }
    }

    /// Requires the archive to have ended properly.
    public func finish() throws {
        switch state {
        case .ended: return
        case .header where block.isEmpty && zeroBlocks == 1:
            return  // one zero block then the end of the medium: GNU tar accepts it
        default:
            throw PaxError("the archive is truncated: it ends before its end-of-archive marker", offset: offset)
        }
    }

    private func headerComplete() throws {
        let start = offset - UInt64(TarHeader.blockSize)
        defer { block.removeAll(keepingCapacity: true) }
        if block.allSatisfy({ $0 == 0 }) {
            zeroBlocks += 1
            if zeroBlocks == 2 { state = .ended }
            return
        }
        zeroBlocks = 0
        var header = try block.withUnsafeBytes { try TarHeader.decode($0, offset: start) }
        afterData = TarHeader.padding(header.size)
        switch header.kind {
        case .extended, .globalExtended:
            guard header.size <= UInt64(maxExtendedHeader) else {
                throw PaxError("an extended header claims \(header.size) bytes, more than \(maxExtendedHeader); the archive is damaged", offset: start)
            }
            state = header.size == 0 ? .padding(remaining: 0) : .extended(remaining: Int(header.size), global: header.kind == .globalExtended)
        default:
            try header.apply(globalRecords.merging(pendingRecords) { $1 }, offset: start)
            pendingRecords = [:]
            afterData = TarHeader.padding(header.size)
            try onMember(header)
            if header.size == 0 {
                try onMemberEnd()
                state = .header
            } else {
                state = .data(remaining: header.size)
            }
        }
    }
}
