import Foundation
import PluginAPI

/// One run of a non-resident attribute: `length` clusters starting at virtual cluster `vcn` of
/// the attribute, stored from logical cluster `lcn` of the volume on (nil: a sparse run, which
/// has no clusters and reads as zeros).
struct NTFSRun: Equatable {
    var vcn: UInt64
    var length: UInt64
    var lcn: UInt64?

    var endVCN: UInt64 { vcn + length }
}

/// Runlists ("mapping pairs"): where the clusters of a non-resident attribute lie.
///
/// A runlist is a sequence of variable-length runs ended by a 0x00 byte (or by the end of the
/// attribute record). Each run starts with a header byte:
///
/// | bits | meaning |
/// |---|---|
/// | 0–3 | L: size in bytes of the run length (1…8) |
/// | 4–7 | O: size in bytes of the LCN delta (0…8) |
///
/// followed by the run length (L bytes, unsigned little-endian, in clusters) and the LCN delta
/// (O bytes, signed little-endian two's complement). The delta is relative to the LCN of the
/// previous non-sparse run (0 for the first), so a run may lie before its predecessor (negative
/// delta). O = 0 means a sparse run: no clusters, and the previous LCN is unchanged. The runs of
/// one attribute record cover VCNs lowest…highest of its header; an attribute split over
/// several records (through $ATTRIBUTE_LIST) continues in the next record at the next VCN.
enum NTFSRunList {
    /// Runs longer than this are nonsense (2⁶² clusters) and rejected before any arithmetic.
    static let maximumRunLength: UInt64 = 1 << 62

    /// Decodes the runlist in `bytes[range]`, whose first run starts at `firstVCN`. Every
    /// allocated run must lie within the volume's `clusterCount` clusters; `owner` names the
    /// attribute in messages.
    static func decode(_ bytes: [UInt8], range: Range<Int>, firstVCN: UInt64, clusterCount: UInt64,
                       owner: @autoclosure () -> String) throws -> [NTFSRun] {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else {
            throw NTFSError.corrupt("\(owner()): runlist lies outside the record")
        }
        var runs: [NTFSRun] = []
        var position = range.lowerBound
        var vcn = firstVCN
        var lcn: Int64 = 0
        while position < range.upperBound, bytes[position] != 0 {
            let header = bytes[position]
            let lengthSize = Int(header & 0x0F), deltaSize = Int(header >> 4)
            guard (1...8).contains(lengthSize), deltaSize <= 8 else {
                throw NTFSError.corrupt("\(owner()): runlist byte \(ntfsHex(header)) at offset \(ntfsHex(position)) is not a valid run header")
            }
            guard position + 1 + lengthSize + deltaSize <= range.upperBound else {
                throw NTFSError.corrupt("\(owner()): run at offset \(ntfsHex(position)) runs past the end of the attribute")
            }
            let length = unsigned(bytes, at: position + 1, size: lengthSize)
            guard length > 0, length < maximumRunLength else {
                throw NTFSError.corrupt("\(owner()): run at VCN \(vcn) has length \(length) clusters")
            }
            var runLCN: UInt64?
            if deltaSize > 0 {
                let delta = signed(bytes, at: position + 1 + lengthSize, size: deltaSize)
                let (next, overflow) = lcn.addingReportingOverflow(delta)
                guard !overflow, next >= 0, let end = UInt64(next).plus(length), end <= clusterCount else {
                    throw NTFSError.corrupt("\(owner()): run at VCN \(vcn) (LCN \(lcn &+ delta), \(length) clusters) lies outside the volume (\(clusterCount) clusters)")
                }
                lcn = next
                runLCN = UInt64(next)
            }
            runs.append(NTFSRun(vcn: vcn, length: length, lcn: runLCN))
            guard let nextVCN = vcn.plus(length), nextVCN < maximumRunLength else {
                throw NTFSError.corrupt("\(owner()): runlist maps more than 2^62 clusters")
            }
            vcn = nextVCN
            position += 1 + lengthSize + deltaSize
        }
        return runs
    }

    /// Appends `next` to `runs`, merging it into the last run when they are contiguous (both
    /// sparse, or allocated back to back).
    static func append(_ next: NTFSRun, to runs: inout [NTFSRun]) {
        if let last = runs.last, last.endVCN == next.vcn {
            let contiguous: Bool
            switch (last.lcn, next.lcn) {
            case (nil, nil): contiguous = true
            case let (a?, b?): contiguous = a + last.length == b
            default: contiguous = false
            }
            if contiguous {
                runs[runs.count - 1].length += next.length
                return
            }
        }
        runs.append(next)
    }

    /// The index of the run holding `vcn` in sorted, contiguous `runs`, or nil.
    static func index(of vcn: UInt64, in runs: [NTFSRun]) -> Int? {
        var low = 0, high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].endVCN <= vcn { low = middle + 1 } else { high = middle }
        }
        guard low < runs.count, runs[low].vcn <= vcn else { return nil }
        return low
    }

    private static func unsigned(_ bytes: [UInt8], at offset: Int, size: Int) -> UInt64 {
        var value: UInt64 = 0
        var index = size
        while index > 0 {
            index -= 1
            value = value << 8 | UInt64(bytes[offset + index])
        }
        return value
    }

    private static func signed(_ bytes: [UInt8], at offset: Int, size: Int) -> Int64 {
        let raw = unsigned(bytes, at: offset, size: size)
        guard size < 8 else { return Int64(bitPattern: raw) }
        let shift = UInt64(64 - 8 * size)
        return Int64(bitPattern: raw << shift) >> Int64(shift)
    }
}
