import Foundation
import PluginAPI

/// Marks ranges of a disk's allocation map as excluded (page files, swap), keeping the
/// map sorted, contiguous and non-overlapping.
enum ExtentOverlay {
    static func exclude(_ ranges: [Range<UInt64>], from map: [Extent]) -> [Extent] {
        let cuts = ranges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        guard !cuts.isEmpty else { return map }
        var result: [Extent] = []
        func append(_ offset: UInt64, _ end: UInt64, _ flag: Extent.Flag) {
            guard end > offset else { return }
            if let last = result.last, last.flag == flag, last.end == offset {
                result[result.count - 1].length += end - offset
            } else {
                result.append(Extent(offset: offset, length: end - offset, flag: flag))
            }
        }
        for extent in map {
            var position = extent.offset
            for cut in cuts where cut.upperBound > position && cut.lowerBound < extent.end {
                append(position, max(position, cut.lowerBound), extent.flag)
                let excludedEnd = min(cut.upperBound, extent.end)
                append(max(position, cut.lowerBound), excludedEnd, extent.flag == .zero ? .zero : .excluded)
                position = excludedEnd
            }
            append(position, extent.end, extent.flag)
        }
        return result
    }
}
