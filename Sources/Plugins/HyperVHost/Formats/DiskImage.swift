import Foundation
import PluginAPI

/// An open virtual disk, read-only. Thread-compatible: one reader at a time per instance is fine.
protocol DiskImage: AnyObject {
    var path: String { get }
    var format: DiskFormat { get }
    var virtualSize: UInt64 { get }
    /// Preferred allocation granularity in bytes (VHDX/VHD block size, qcow2 cluster size; raw: 1 MiB).
    var blockSize: UInt64 { get }
    /// Extents covering [0, virtualSize) in ascending order, adjacent ones of the same flag merged:
    /// .data where the image (or, for differencing disks, any image in its parent chain) holds data;
    /// .zero where nothing is allocated or the format records zeros. A backup reads only .data.
    func allocationMap() throws -> [Extent]
    /// Reads exactly buffer.count bytes of the virtual disk at `offset` (unallocated reads as zeros,
    /// differencing disks fall through to the parent). Throws PluginError(.invalid) past the end.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
}

/// Where one layer of a chain gets the bytes of a range of its virtual disk.
enum RunSource: Equatable {
    /// Stored in this layer's file at the given file offset.
    case file(UInt64)
    /// Recorded as zeros (or unallocated with no parent).
    case zero
    /// Not in this layer: read the parent (zeros beyond the parent's end, or with no parent).
    case parent
}

/// What one layer of a chain says about a range, for allocation maps.
enum LayerState { case data, zero, parent }

/// Ascending ranges of one layer's states, adjacent equal states merged.
///
/// A damaged or hostile file can describe an absurdly fragmented disk (say, thousands of
/// qcow2 L1 entries sharing one L2 table of alternating entries). To keep memory bounded the
/// map stops at `maxRuns` ranges, and `resolve` then throws instead of returning it.
struct LayerMap {
    static let maxRuns = 8_000_000

    private(set) var runs: [(offset: UInt64, length: UInt64, state: LayerState)] = []
    /// True once `maxRuns` was reached; callers may stop walking their tables.
    private(set) var isFull = false

    mutating func append(offset: UInt64, length: UInt64, _ state: LayerState) {
        guard length > 0, !isFull else { return }
        if let last = runs.last, last.state == state, last.offset + last.length == offset {
            runs[runs.count - 1].length += length
        } else if runs.count >= LayerMap.maxRuns {
            isFull = true
        } else {
            runs.append((offset, length, state))
        }
    }

    /// Appends a range that is allocated in the file at `fileOffset`, splitting it into .data and
    /// .zero using the file's holes when the file is sparse.
    mutating func appendAllocated(offset: UInt64, length: UInt64, fileOffset: UInt64, file: FileReader) {
        var position = offset
        for run in file.dataRuns(offset: fileOffset, length: length) {
            let start = offset + (run.offset - fileOffset)
            append(offset: position, length: start - position, .zero)
            append(offset: start, length: run.length, .data)
            position = start + run.length
        }
        append(offset: position, length: offset + length - position, .zero)
    }

    /// Turns the layer map into the image's allocation map: .parent ranges take the parent's
    /// extents (zeros beyond the parent's end, or when there is no parent).
    func resolve(parent: DiskImage?, path: String) throws -> [Extent] {
        if isFull {
            throw DiskError.unsupported(path, "the allocation map has more than \(LayerMap.maxRuns) ranges; the image is implausibly fragmented (damaged?)")
        }
        var extents = ExtentList()
        let needsParent = parent != nil && runs.contains { $0.state == .parent }
        let parentExtents = needsParent ? try parent?.allocationMap() ?? [] : []
        var cursor = 0 // index into parentExtents, advanced monotonically
        for run in runs {
            switch run.state {
            case .data: extents.append(offset: run.offset, length: run.length, .data)
            case .zero: extents.append(offset: run.offset, length: run.length, .zero)
            case .parent:
                let end = run.offset + run.length
                var position = run.offset
                while cursor < parentExtents.count, parentExtents[cursor].end <= position { cursor += 1 }
                var index = cursor
                while position < end, index < parentExtents.count, parentExtents[index].offset < end {
                    let extent = parentExtents[index]
                    let stop = Swift.min(extent.end, end)
                    if stop > position {
                        extents.append(offset: position, length: stop - position, extent.flag)
                        position = stop
                    }
                    index += 1
                }
                extents.append(offset: position, length: end - position, .zero)
            }
        }
        return extents.extents
    }
}

/// Ascending extents with adjacent extents of the same flag merged.
struct ExtentList {
    private(set) var extents: [Extent] = []

    mutating func append(offset: UInt64, length: UInt64, _ flag: Extent.Flag) {
        guard length > 0 else { return }
        if let last = extents.last, last.flag == flag, last.end == offset {
            extents[extents.count - 1].length += length
        } else {
            extents.append(Extent(offset: offset, length: length, flag: flag))
        }
    }
}

/// Checks a read request against the virtual size.
func checkReadRange(_ image: DiskImage, offset: UInt64, count: Int) throws {
    guard let end = offset.plus(UInt64(count)), end <= image.virtualSize else {
        throw DiskError.invalid(image.path, "read of \(count) bytes at offset \(offset) is past the end of the virtual disk (size \(image.virtualSize))")
    }
}

/// Reads [offset, offset + buffer.count) of a parent, zeros where the parent is shorter or absent.
func readFromParent(_ parent: DiskImage?, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
    guard buffer.count > 0, let base = buffer.baseAddress else { return }
    var available = 0
    if let parent, offset < parent.virtualSize {
        available = Int(Swift.min(UInt64(buffer.count), parent.virtualSize - offset))
        try parent.read(at: offset, into: UnsafeMutableRawBufferPointer(start: base, count: available))
    }
    if available < buffer.count {
        (base + available).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - available)
    }
}

/// Fills a read buffer from a sequence of runs, merging neighbours so that a contiguous stretch
/// of the file becomes one `pread` and a contiguous stretch of the parent one parent read.
///
/// Formats walk their tables block by block and call `add` for each piece in order; `finish`
/// performs the last pending piece.
struct ReadPlan {
    let file: FileReader
    let parent: DiskImage?
    let buffer: UnsafeMutableRawBufferPointer
    /// The virtual offset of buffer[0].
    let start: UInt64

    private var cursor = 0
    private var pending: (source: RunSource, at: Int, length: Int)?

    init(file: FileReader, parent: DiskImage?, buffer: UnsafeMutableRawBufferPointer, start: UInt64) {
        self.file = file
        self.parent = parent
        self.buffer = buffer
        self.start = start
    }

    /// Adds the next `length` bytes of the buffer, taken from `source`.
    mutating func add(_ source: RunSource, length: Int) throws {
        guard length > 0 else { return }
        let normalized: RunSource = (source == .parent && parent == nil) ? .zero : source
        if let current = pending {
            let extends: Bool
            switch (current.source, normalized) {
            case (.file(let a), .file(let b)): extends = a.plus(UInt64(current.length)) == b
            case (.zero, .zero), (.parent, .parent): extends = true
            default: extends = false
            }
            if extends {
                pending = (current.source, current.at, current.length + length)
                cursor += length
                return
            }
            try flush()
        }
        pending = (normalized, cursor, length)
        cursor += length
    }

    /// Performs the last pending piece; the whole buffer must have been covered.
    mutating func finish() throws {
        try flush()
    }

    private mutating func flush() throws {
        guard let piece = pending, let base = buffer.baseAddress else { return }
        pending = nil
        let target = UnsafeMutableRawBufferPointer(start: base + piece.at, count: piece.length)
        switch piece.source {
        case .file(let offset): try file.read(at: offset, into: target)
        case .zero: target.initializeMemory(as: UInt8.self, repeating: 0)
        case .parent: try readFromParent(parent, at: start + UInt64(piece.at), into: target)
        }
    }
}
