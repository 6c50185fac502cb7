import Foundation
import PluginAPI

/// Random-access reads of a disk or a volume: a virtual disk inside a recovery point (read
/// through the host's callbacks), a disk image in tests, or a slice of either (a partition).
/// Readers of partition tables and file systems work only through this.
protocol BlockSource: AnyObject {
    /// Size in bytes.
    var size: UInt64 { get }
    /// Reads exactly `buffer.count` bytes at `offset`; throws PluginError(.invalid) past the end.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
}

extension BlockSource {
    /// Reads `count` bytes at `offset` into a new array.
    func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }
}

/// A window of another source: a partition of a disk.
final class BlockSlice: BlockSource {
    let base: BlockSource
    let offset: UInt64
    let size: UInt64

    init(_ base: BlockSource, offset: UInt64, size: UInt64) throws {
        guard offset <= base.size, size <= base.size - offset else {
            throw PluginError(.corrupt, "a partition at byte \(offset) of \(size) bytes passes the end of the disk (\(base.size) bytes)")
        }
        self.base = base
        self.offset = offset
        self.size = size
    }

    func read(at position: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard position <= size, UInt64(buffer.count) <= size - position else {
            throw PluginError(.invalid, "read of \(buffer.count) bytes at \(position) passes the end of the volume (\(size) bytes)")
        }
        try base.read(at: offset + position, into: buffer)
    }
}

/// A disk image file as a block source (tests, and recovery of disks at rest).
final class DiskImageSource: BlockSource {
    let image: DiskImage
    var size: UInt64 { image.virtualSize }

    init(_ image: DiskImage) { self.image = image }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try image.read(at: offset, into: buffer)
    }
}

extension Array where Element == Range<UInt64> {
    /// The ranges sorted, with overlapping and touching ones joined.
    func mergedRanges() -> [Range<UInt64>] {
        var merged: [Range<UInt64>] = []
        for range in sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, range.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<Swift.max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}
