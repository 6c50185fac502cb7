import Foundation
import PluginAPI

/// The value of one attribute as a byte stream: a file's $DATA (unnamed or named), a
/// directory's $INDEX_ALLOCATION, $MFT's own $DATA, a non-resident $ATTRIBUTE_LIST…
///
/// It is put together from a single resident attribute record (the value is inside the MFT
/// record), or from the non-resident attribute records holding consecutive VCN ranges (one
/// record normally; several, in extension records, when $ATTRIBUTE_LIST splits a long runlist).
/// The sizes come from the record holding VCN 0:
///
/// - data size: the stream's length; reads past it are refused;
/// - initialized size (valid data length): bytes from there to the data size read as zeros,
///   whatever the clusters hold;
/// - sparse runs read as zeros;
/// - compressed streams (LZNT1, see `NTFSLZNT1`) are read one compression unit at a time; the
///   last unit read is cached.
///
/// Not thread-safe: `NTFSFileSystem` serialises its calls.
final class NTFSStream {
    /// Names the stream in messages ("MFT record 64: $DATA"), built only when needed.
    var owner: String { describeOwner() }
    private let describeOwner: () -> String
    let volume: BlockSource
    let clusterSize: UInt64
    let resident: [UInt8]?
    /// Sorted, contiguous runs from VCN 0 (non-resident streams).
    let runs: [NTFSRun]
    let size: UInt64
    let initializedSize: UInt64
    let allocatedSize: UInt64
    let isCompressed: Bool
    let isEncrypted: Bool
    let isSparse: Bool
    /// Bytes per compression unit (compressed streams).
    let compressionUnitSize: UInt64
    /// Why a compressed stream cannot be decompressed, if it cannot.
    let compressionProblem: String?
    private var cachedUnit: (index: UInt64, bytes: [UInt8])?

    /// Builds the stream of `pieces` (the attribute records of one attribute: same type and
    /// name); `owner` names it in messages ("MFT record 64: $DATA"). Unless `partial` (while
    /// $MFT's own runlist is being gathered), the runlist must cover the data size.
    init(pieces: [NTFSAttribute], owner: @autoclosure @escaping () -> String, volume: BlockSource, clusterSize: UInt64,
         partial: Bool = false) throws {
        describeOwner = owner
        self.volume = volume
        self.clusterSize = clusterSize
        guard let first = pieces.first else { throw NTFSError.corrupt("\(owner()): attribute missing") }
        if let value = first.residentValue {
            guard pieces.count == 1 else {
                throw NTFSError.corrupt("\(owner()): a resident attribute also has \(pieces.count - 1) other parts")
            }
            resident = value
            isEncrypted = first.isEncrypted
            isSparse = false
            runs = []
            size = UInt64(value.count)
            initializedSize = size
            allocatedSize = size
            isCompressed = false
            compressionUnitSize = 0
            compressionProblem = nil
            return
        }
        let sorted = pieces.sorted { ($0.nonResident?.lowestVCN ?? 0) < ($1.nonResident?.lowestVCN ?? 0) }
        var runs: [NTFSRun] = []
        var nextVCN: UInt64 = 0
        for piece in sorted {
            guard let part = piece.nonResident else {
                throw NTFSError.corrupt("\(piece.description): resident part of a non-resident attribute")
            }
            guard part.lowestVCN == nextVCN else {
                throw NTFSError.corrupt("\(piece.description): starts at VCN \(part.lowestVCN) but the previous part ends at VCN \(nextVCN)")
            }
            for run in part.runs { NTFSRunList.append(run, to: &runs) }
            nextVCN = runs.last?.endVCN ?? 0
        }
        guard let head = sorted.first?.nonResident else { throw NTFSError.corrupt("\(owner()): attribute missing") }
        let mapped = runs.last?.endVCN ?? 0
        guard partial || mapped >= head.dataSize.divideRoundingUp(clusterSize) else {
            throw NTFSError.corrupt("\(owner()): the runlist maps \(mapped) clusters but the data size is \(head.dataSize) bytes (a part of the attribute is missing)")
        }
        self.runs = runs
        resident = nil
        // Flags and sizes are those of the record holding VCN 0.
        isEncrypted = sorted[0].isEncrypted
        isSparse = sorted[0].isSparse
        size = head.dataSize
        initializedSize = head.initializedSize
        allocatedSize = head.allocatedSize
        isCompressed = sorted[0].isCompressed
        var unitSize: UInt64 = 0
        var problem: String?
        if isCompressed {
            let method = sorted[0].flags & NTFSAttribute.flagCompressionMask
            if method != 1 {
                problem = "compression method \(method) is not LZNT1"
            } else if head.compressionUnit == 0 || head.compressionUnit > 8 {
                problem = "compression unit of 2^\(head.compressionUnit) clusters is not supported"
            } else {
                unitSize = clusterSize << UInt64(head.compressionUnit)
                if unitSize > 1 << 20 { problem = "compression unit of \(unitSize) bytes is too large" }
            }
        }
        compressionUnitSize = problem == nil ? unitSize : 0
        compressionProblem = problem
    }

    /// Reads exactly `buffer.count` bytes at `offset`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let count = UInt64(buffer.count)
        guard offset <= size, count <= size - offset else {
            throw NTFSError.invalid("\(owner): read of \(count) bytes at \(offset) passes the end of the stream (\(size) bytes)")
        }
        guard count > 0 else { return }
        if isEncrypted { throw NTFSError.unsupported("\(owner) is encrypted (EFS); it can only be decrypted on Windows with the owner's key") }
        if let resident {
            resident.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset + count)])) }
            return
        }
        if isCompressed, let compressionProblem { throw NTFSError.unsupported("\(owner) is NTFS-compressed: \(compressionProblem)") }
        var done: UInt64 = 0
        while done < count {
            let position = offset + done
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(done)...])
            if position >= initializedSize {
                target.initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            let wanted = min(count - done, initializedSize - position)
            let got = isCompressed ? try readCompressed(at: position, count: wanted, into: target)
                                   : try readPlain(at: position, count: wanted, into: target)
            done += got
        }
    }

    /// Reads up to `count` bytes at `position` from one run; returns how many it read.
    private func readPlain(at position: UInt64, count: UInt64, into target: UnsafeMutableRawBufferPointer) throws -> UInt64 {
        let vcn = position / clusterSize, within = position % clusterSize
        guard let index = NTFSRunList.index(of: vcn, in: runs) else {
            throw NTFSError.corrupt("\(owner): no run maps VCN \(vcn) (byte \(position)); the runlist covers \(runs.last?.endVCN ?? 0) clusters")
        }
        let run = runs[index]
        let clustersLeft = run.endVCN - vcn
        let bytesLeft = (clustersLeft.times(clusterSize) ?? UInt64.max) - within
        let length = min(count, bytesLeft)
        let slice = UnsafeMutableRawBufferPointer(rebasing: target[0..<Int(length)])
        if let lcn = run.lcn {
            try volume.read(at: (lcn + (vcn - run.vcn)) * clusterSize + within, into: slice)
        } else {
            slice.initializeMemory(as: UInt8.self, repeating: 0)
        }
        return length
    }

    /// Reads up to `count` bytes at `position` from one compression unit.
    private func readCompressed(at position: UInt64, count: UInt64, into target: UnsafeMutableRawBufferPointer) throws -> UInt64 {
        let index = position / compressionUnitSize, within = Int(position % compressionUnitSize)
        let unit = try compressionUnit(index)
        let length = min(Int(count), unit.count - within)
        unit.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<within + length])) }
        return UInt64(length)
    }

    /// The decompressed bytes of compression unit `index`.
    private func compressionUnit(_ index: UInt64) throws -> [UInt8] {
        if let cachedUnit, cachedUnit.index == index { return cachedUnit.bytes }
        let clustersPerUnit = compressionUnitSize / clusterSize
        let firstVCN = index * clustersPerUnit, endVCN = firstVCN + clustersPerUnit
        var stored: [(lcn: UInt64, count: UInt64)] = []
        var sparse: UInt64 = 0
        var vcn = firstVCN
        while vcn < endVCN {
            guard let runIndex = NTFSRunList.index(of: vcn, in: runs) else {
                throw NTFSError.corrupt("\(owner): no run maps VCN \(vcn) (compression unit \(index)); the runlist covers \(runs.last?.endVCN ?? 0) clusters")
            }
            let run = runs[runIndex]
            let count = min(run.endVCN, endVCN) - vcn
            if let lcn = run.lcn { stored.append((lcn + (vcn - run.vcn), count)) } else { sparse += count }
            vcn += count
        }
        var unit = [UInt8](repeating: 0, count: Int(compressionUnitSize))
        if sparse < clustersPerUnit {
            var data = [UInt8](repeating: 0, count: Int((clustersPerUnit - sparse) * clusterSize))
            var at = 0
            try data.withUnsafeMutableBytes { raw in
                for piece in stored {
                    let length = Int(piece.count * clusterSize)
                    try volume.read(at: piece.lcn * clusterSize, into: UnsafeMutableRawBufferPointer(rebasing: raw[at..<at + length]))
                    at += length
                }
            }
            unit = sparse == 0 ? data : try NTFSLZNT1.decompress(data, outputSize: unit.count, owner: "\(owner): compression unit \(index)")
        }
        cachedUnit = (index, unit)
        return unit
    }

    /// The whole value, refusing values over `limit` bytes (metadata such as $ATTRIBUTE_LIST).
    func readAll(limit: Int) throws -> [UInt8] {
        guard size <= UInt64(limit) else {
            throw NTFSError.corrupt("\(owner) is \(size) bytes, more than the \(limit) bytes such a structure can have")
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        try bytes.withUnsafeMutableBytes { try read(at: 0, into: $0) }
        return bytes
    }

    /// The volume byte ranges of the stream's allocated clusters, ascending and merged.
    var volumeExtents: [Range<UInt64>] {
        runs.compactMap { run in run.lcn.map { $0 * clusterSize..<($0 + run.length) * clusterSize } }.mergedRanges()
    }
}
