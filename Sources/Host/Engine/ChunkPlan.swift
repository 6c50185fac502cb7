import Foundation
import PluginAPI

/// What a backup does with each fixed-size chunk of a block stream, decided from the
/// provider's extents and (for incrementals) its changed ranges, before any data is read.
struct ChunkPlan {
    enum Action: Equatable {
        /// Nothing allocated: record a zero entry.
        case zero
        /// Entirely excluded (page file, swap): record an excluded entry.
        case excluded
        /// Unchanged since the previous recovery point: reuse its entry.
        case reuse(RecoveryPointIndex.Entry)
        /// Read these ranges (relative to the chunk start); the rest of the chunk is zeros.
        case read([Range<Int>])
    }

    let chunkSize: Int
    let streamSize: UInt64
    var actions: [Action] = []

    var count: Int { actions.count }

    func length(of index: Int) -> Int {
        let start = UInt64(index) * UInt64(chunkSize)
        return Int(min(UInt64(chunkSize), streamSize - start))
    }

    /// Validates extents from a provider: in order, non-overlapping, inside the stream.
    static func validate(_ extents: [Extent], size: UInt64, provider: String, stream: String) throws {
        var position: UInt64 = 0
        for extent in extents {
            guard extent.offset >= position, extent.length <= size, extent.offset <= size - extent.length else {
                throw HostError(.corrupt, "\(provider): extents of stream \(stream) overlap, go backwards or pass its end (\(extent.offset)+\(extent.length), size \(size))")
            }
            position = extent.end
        }
    }

    /// Plans a stream.
    /// - Parameters:
    ///   - extents: the provider's map (ranges it does not list are treated as zero).
    ///   - changed: changed ranges since the previous point, or nil to read every allocated chunk.
    ///   - previous: the previous point's entries for this stream, when it has the same size and chunking.
    init(chunkSize: Int, streamSize: UInt64, extents: [Extent], changed: [Extent]?, previous: [RecoveryPointIndex.Entry]?) {
        self.chunkSize = chunkSize
        self.streamSize = streamSize
        let count = Int((streamSize + UInt64(chunkSize) - 1) / UInt64(chunkSize))
        let chunk = UInt64(chunkSize)
        var dataRanges = [[Range<Int>]](repeating: [], count: count)
        var excludedBytes = [Int](repeating: 0, count: count)
        for extent in extents where extent.length > 0 {
            var position = extent.offset
            while position < extent.end {
                let index = Int(position / chunk)
                let chunkStart = UInt64(index) * chunk
                let end = min(extent.end, chunkStart + chunk)
                let range = Int(position - chunkStart)..<Int(end - chunkStart)
                switch extent.flag {
                case .data: dataRanges[index].append(range)
                case .excluded: excludedBytes[index] += range.count
                case .zero: break
                }
                position = end
            }
        }
        var touched: [Bool]?
        if let changed {
            var marks = [Bool](repeating: false, count: count)
            for range in changed where range.length > 0 && range.offset < streamSize {
                let first = Int(range.offset / chunk)
                let last = Int((min(range.end, streamSize) - 1) / chunk)
                for index in first...last { marks[index] = true }
            }
            touched = marks
        }
        actions.reserveCapacity(count)
        for index in 0..<count {
            let length = Int(min(chunk, streamSize - UInt64(index) * chunk))
            if let touched, let previous, index < previous.count, !touched[index], previous[index].length == UInt32(length) {
                actions.append(.reuse(previous[index]))
            } else if dataRanges[index].isEmpty {
                actions.append(excludedBytes[index] > 0 ? .excluded : .zero)
            } else {
                actions.append(.read(ChunkPlan.merge(dataRanges[index])))
            }
        }
    }

    static func merge(_ ranges: [Range<Int>]) -> [Range<Int>] {
        var merged: [Range<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, range.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}
