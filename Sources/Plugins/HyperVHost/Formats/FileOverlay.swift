import Foundation

/// Replacement bytes for ranges of a file, kept in memory: the result of replaying a VHDX log
/// without writing to the file.
///
/// A VHDX log entry says "these 4 KiB sectors of the file now hold these bytes" (data
/// descriptors) and "these ranges are now zeros" (zero descriptors). Replaying read-only means
/// every later read of the file must see those bytes instead of what is on disk; `FileReader`
/// asks the overlay to patch each buffer it reads. Later writes replace earlier ones, exactly
/// as if they had been applied to the file in order.
struct FileOverlay {
    /// One replaced range. `bytes == nil` means the range reads as zeros.
    struct Segment {
        var offset: UInt64
        var length: UInt64
        var bytes: [UInt8]?

        var end: UInt64 { offset + length }

        /// The part of this segment within [from, to), which must intersect it.
        func clipped(from: UInt64, to: UInt64) -> Segment {
            let start = Swift.max(offset, from), stop = Swift.min(end, to)
            guard let bytes else { return Segment(offset: start, length: stop - start, bytes: nil) }
            let lower = Int(start - offset), upper = Int(stop - offset)
            return Segment(offset: start, length: stop - start, bytes: Array(bytes[lower..<upper]))
        }
    }

    /// Sorted by offset, never overlapping.
    private(set) var segments: [Segment] = []

    /// The size the file has after the replay (a log entry's LastFileOffset may extend it);
    /// reads between the physical end and this size return zeros.
    var minimumFileSize: UInt64 = 0

    var isEmpty: Bool { segments.isEmpty }

    /// Replaces the bytes at `offset` with `bytes`.
    mutating func write(_ bytes: [UInt8], at offset: UInt64) {
        guard !bytes.isEmpty, let end = offset.plus(UInt64(bytes.count)) else { return }
        replace(Segment(offset: offset, length: end - offset, bytes: bytes))
    }

    /// Replaces `length` bytes at `offset` with zeros.
    mutating func zero(at offset: UInt64, length: UInt64) {
        guard length > 0, offset.plus(length) != nil else { return }
        replace(Segment(offset: offset, length: length, bytes: nil))
    }

    private mutating func replace(_ segment: Segment) {
        var result: [Segment] = []
        result.reserveCapacity(segments.count + 2)
        var inserted = false
        for existing in segments {
            if existing.end <= segment.offset {
                result.append(existing)
                continue
            }
            if existing.offset >= segment.end {
                if !inserted { result.append(segment); inserted = true }
                result.append(existing)
                continue
            }
            // Overlap: keep the parts of `existing` outside the new segment.
            if existing.offset < segment.offset {
                result.append(existing.clipped(from: existing.offset, to: segment.offset))
            }
            if !inserted { result.append(segment); inserted = true }
            if existing.end > segment.end {
                result.append(existing.clipped(from: segment.end, to: existing.end))
            }
        }
        if !inserted { result.append(segment) }
        segments = result
    }

    /// True when any replaced range intersects [offset, offset + length).
    func intersects(offset: UInt64, length: UInt64) -> Bool {
        let end = offset.plus(length) ?? UInt64.max
        let index = firstSegment(endingAfter: offset)
        return index < segments.count && segments[index].offset < end
    }

    /// The index of the first segment whose end is beyond `offset` (binary search).
    private func firstSegment(endingAfter offset: UInt64) -> Int {
        var low = 0, high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].end <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Patches `buffer`, which holds the file's bytes starting at `fileOffset`, with the overlay.
    func apply(to buffer: UnsafeMutableRawBufferPointer, fileOffset: UInt64) {
        guard !segments.isEmpty, buffer.count > 0, let base = buffer.baseAddress else { return }
        let end = fileOffset.plus(UInt64(buffer.count)) ?? UInt64.max
        var index = firstSegment(endingAfter: fileOffset)
        while index < segments.count, segments[index].offset < end {
            let segment = segments[index]
            let start = Swift.max(segment.offset, fileOffset), stop = Swift.min(segment.end, end)
            let target = base + Int(start - fileOffset)
            let count = Int(stop - start)
            if let bytes = segment.bytes {
                bytes.withUnsafeBytes { source in
                    if let source = source.baseAddress {
                        target.copyMemory(from: source + Int(start - segment.offset), byteCount: count)
                    }
                }
            } else {
                target.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            }
            index += 1
        }
    }
}
