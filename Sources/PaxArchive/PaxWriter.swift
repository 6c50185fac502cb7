/// Writes a POSIX pax archive (see `TarHeader`) to a sink, member by member, without
/// holding members in memory: `begin`, any number of `write`s adding up to the header's
/// size, `end`; then `finish` writes the end-of-archive marker (two zero blocks).
///
/// Small writes are gathered into pieces of at least `pieceSize` bytes before they reach
/// the sink (a sink may be a plugin call); large ones pass straight through.
public final class PaxWriter {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    let sink: Sink
    let pieceSize: Int
    private var pending: [UInt8] = []
    private var remaining: UInt64 = 0
    private var inMember = false
    private var padding = 0
    /// Every byte handed to the sink so far, plus what is gathered.
    public private(set) var bytesWritten: UInt64 = 0

    public init(pieceSize: Int = 1 << 20, sink: @escaping Sink) {
        self.sink = sink
        self.pieceSize = pieceSize
        pending.reserveCapacity(pieceSize)
    }

    public func begin(_ header: TarHeader, extra: [(String, String)] = []) throws {
        guard !inMember else { throw PaxError("a member began before the previous one ended", offset: bytesWritten) }
        try gather(header.encode(extra: extra))
        remaining = header.size
        padding = TarHeader.padding(header.size)
        inMember = true
    }

    public func write(_ data: UnsafeRawBufferPointer) throws {
        guard inMember, UInt64(data.count) <= remaining else {
            throw PaxError("a member was given more bytes than its header's size", offset: bytesWritten)
        }
        remaining -= UInt64(data.count)
        if data.count >= pieceSize / 4 {
            try flush()
            try sink(data)
            bytesWritten += UInt64(data.count)
        } else {
            try gather(Array(data))
        }
    }

    public func end() throws {
        guard inMember, remaining == 0 else {
            throw PaxError("a member ended \(remaining) bytes short of its header's size", offset: bytesWritten)
        }
        inMember = false
        try gather([UInt8](repeating: 0, count: padding))
    }

    /// A whole member from bytes in memory.
    public func add(_ header: TarHeader, _ data: [UInt8], extra: [(String, String)] = []) throws {
        var header = header
        header.size = UInt64(data.count)
        try begin(header, extra: extra)
        try data.withUnsafeBytes { try write($0) }
        try end()
    }

    /// Writes the end-of-archive marker and hands everything gathered to the sink.
    public func finish() throws {
        guard !inMember else { throw PaxError("the archive ended inside a member", offset: bytesWritten) }
        try gather([UInt8](repeating: 0, count: 2 * TarHeader.blockSize))
        try flush()
    }

    private func gather(_ bytes: [UInt8]) throws {
        pending += bytes
        bytesWritten += UInt64(bytes.count)
        if pending.count >= pieceSize { try flush() }
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        try pending.withUnsafeBytes { try sink($0) }
        pending.removeAll(keepingCapacity: true)
    }
}
