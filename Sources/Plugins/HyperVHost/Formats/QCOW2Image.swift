import Foundation
import PluginAPI

/// A qcow2 image (versions 2 and 3), read-only, following its backing file like a parent.
///
/// Address translation (docs/interop/qcow2.txt): a virtual offset splits into an L1 index, an
/// L2 index and an offset in the cluster, with `cluster_size / 8` entries per L2 table.
///
/// - L1 entry (big-endian UInt64): bits 9–55 the L2 table's file offset (cluster aligned;
///   0 means the whole L2 range is unallocated), bit 63 "copied" (refcount is 1).
/// - L2 entry: bit 62 compressed, bit 63 copied. For a standard cluster: bit 0 "reads as
///   zeros" (version 3), bits 9–55 the host cluster offset (cluster aligned; 0 means
///   unallocated: the backing file's data, or zeros without one). A compressed cluster stores a
///   different descriptor in bits 0–61; dpm refuses to read it.
///
/// L2 tables are read on demand and cached (up to 32 MiB of tables); contiguous host clusters
/// are read with one `pread`.
final class QCOW2Image: DiskImage {
    let path: String
    let format = DiskFormat.qcow2
    let virtualSize: UInt64
    let header: QCOW2Header
    let parent: DiskImage?

    private let file: FileReader
    private let l1: [UInt64]
    private let l2Entries: UInt64
    private var l2Cache: [UInt64: [UInt64]] = [:]
    private let l2CacheLimit: Int
    private static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    private static let compressedBit: UInt64 = 1 << 62

    var blockSize: UInt64 { header.clusterSize }

    /// How one cluster of the virtual disk is stored.
    enum Mapping: Equatable {
        case unallocated, zero, data(UInt64), compressed(l2Entry: UInt64)
    }

    init(file: FileReader, context: OpenContext) throws {
        self.file = file
        path = file.path
        file.zeroFillPastEnd = true
        header = try QCOW2Header.read(from: file)
        virtualSize = header.size
        let clusterSize = header.clusterSize
        l2Entries = clusterSize / 8
        l2CacheLimit = Swift.max(4, Int((32 << 20) / clusterSize))
        let needed = virtualSize.divideRoundingUp(clusterSize).divideRoundingUp(l2Entries)
        guard UInt64(header.l1Size) >= needed else {
            throw DiskError.corrupt(path, "L1 table has \(header.l1Size) entries but a \(virtualSize)-byte disk needs \(needed)")
        }
        guard header.l1TableOffset % clusterSize == 0 || needed == 0,
              let l1End = header.l1TableOffset.plus(needed * 8), l1End <= file.physicalSize else {
            throw DiskError.corrupt(path, "L1 table (offset \(header.l1TableOffset), \(needed) entries) is misaligned or extends past the end of the file (size \(file.physicalSize))")
        }
        guard needed * 8 <= DiskLimits.maxMetadataBytes else {
            throw DiskError.unsupported(path, "L1 table of \(needed) entries is larger than dpm loads")
        }
        var table = [UInt64](repeating: 0, count: Int(needed))
        let l1TableOffset = header.l1TableOffset
        try table.withUnsafeMutableBytes { try file.read(at: l1TableOffset, into: $0) }
        for i in table.indices { table[i] = UInt64(bigEndian: table[i]) }
        l1 = table
        if let backing = header.backingFile {
            var format: DiskFormat?
            if let name = header.backingFormat {
                guard let known = DiskFormat(qemuName: name) else {
                    throw DiskError.unsupported(path, "backing file \(backing) has format \(name), which dpm does not read")
                }
                format = known
            }
            let isAbsolute = backing.hasPrefix("/")
            parent = try DiskImageOpener.openParent(
                childPath: path, childFormat: .qcow2, relative: isAbsolute ? [] : [backing], absolute: isAbsolute ? [backing] : [],
                format: format, description: "backing file \(backing)", context: context)
        } else {
            parent = nil
        }
    }

    /// The L2 table at `offset`, from the cache or the file.
    private func l2Table(at offset: UInt64, l1Index: Int) throws -> [UInt64] {
        if let cached = l2Cache[offset] { return cached }
        let clusterSize = header.clusterSize
        guard offset % clusterSize == 0, let end = offset.plus(clusterSize), end <= file.physicalSize else {
            throw DiskError.corrupt(path, "L1 entry \(l1Index) points to an L2 table at offset \(offset), which is misaligned or past the end of the file (size \(file.physicalSize))")
        }
        var table = [UInt64](repeating: 0, count: Int(l2Entries))
        try table.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
        for i in table.indices { table[i] = UInt64(bigEndian: table[i]) }
        if l2Cache.count >= l2CacheLimit { l2Cache.removeAll(keepingCapacity: true) }
        l2Cache[offset] = table
        return table
    }

    /// The mapping of the L2 range `l1Index`, or nil when the whole range is unallocated.
    private func l2Range(_ l1Index: Int) throws -> [UInt64]? {
        let l2Offset = l1[l1Index] & QCOW2Image.offsetMask
        return l2Offset == 0 ? nil : try l2Table(at: l2Offset, l1Index: l1Index)
    }

    /// Decodes one L2 entry of virtual cluster `cluster`.
    private func mapping(_ entry: UInt64, cluster: UInt64) throws -> Mapping {
        if entry & QCOW2Image.compressedBit != 0 { return .compressed(l2Entry: entry) }
        if header.version >= 3 && entry & 1 != 0 { return .zero }
        let host = entry & QCOW2Image.offsetMask
        if host == 0 { return .unallocated }
        guard host % header.clusterSize == 0, host < file.physicalSize else {
            throw DiskError.corrupt(path, "L2 entry of cluster \(cluster) points to host offset \(host), which is misaligned or past the end of the file (size \(file.physicalSize))")
        }
        return .data(host)
    }

    private func compressedError(cluster: UInt64, entry: UInt64) -> PluginError {
        let hostOffset = entry & ((1 << (62 - (UInt64(header.clusterBits) - 8))) - 1)
        return DiskError.unsupported(path, "cluster at virtual offset \(cluster * header.clusterSize) is compressed (host offset \(hostOffset)); dpm does not read compressed qcow2 clusters — convert the image without -c first")
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkReadRange(self, offset: offset, count: buffer.count)
        var plan = ReadPlan(file: file, parent: parent, buffer: buffer, start: offset)
        let clusterSize = header.clusterSize, end = offset + UInt64(buffer.count)
        var position = offset
        while position < end {
            let cluster = position / clusterSize, inCluster = position % clusterSize
            let length = Swift.min(clusterSize - inCluster, end - position)
            let l1Index = Int(cluster / l2Entries)
            if let table = try l2Range(l1Index) {
                switch try mapping(table[Int(cluster % l2Entries)], cluster: cluster) {
                case .unallocated: try plan.add(.parent, length: Int(length))
                case .zero: try plan.add(.zero, length: Int(length))
                case .data(let host): try plan.add(.file(host + inCluster), length: Int(length))
                case .compressed(let entry): throw compressedError(cluster: cluster, entry: entry)
                }
            } else {
                try plan.add(.parent, length: Int(length))
            }
            position += length
        }
        try plan.finish()
    }

    func allocationMap() throws -> [Extent] {
        var map = LayerMap()
        let clusterSize = header.clusterSize, rangeSize = clusterSize * l2Entries
        // The runs of each L2 table, relative to its range, keyed by table offset and the
        // number of entries inside the disk: a table that several L1 entries share (only in
        // damaged files) is decoded once. Entries past the end of the disk are never looked at.
        var tableRuns: [[UInt64]: [(offset: UInt64, length: UInt64, state: LayerState)]] = [:]
        for l1Index in 0..<l1.count {
            if map.isFull { break }
            let rangeStart = UInt64(l1Index) * rangeSize
            let rangeLength = Swift.min(rangeSize, virtualSize - rangeStart)
            let l2Offset = l1[l1Index] & QCOW2Image.offsetMask
            guard l2Offset != 0 else {
                map.append(offset: rangeStart, length: rangeLength, .parent)
                continue
            }
            let used = rangeLength.divideRoundingUp(clusterSize)
            let runs: [(offset: UInt64, length: UInt64, state: LayerState)]
            if let known = tableRuns[[l2Offset, used]] {
                runs = known
            } else {
                let table = try l2Table(at: l2Offset, l1Index: l1Index)
                var local = LayerMap()
                for index in 0..<Int(used) {
                    let start = UInt64(index) * clusterSize
                    let cluster = (rangeStart + start) / clusterSize
                    switch try mapping(table[index], cluster: cluster) {
                    case .unallocated: local.append(offset: start, length: clusterSize, .parent)
                    case .zero: local.append(offset: start, length: clusterSize, .zero)
                    case .data: local.append(offset: start, length: clusterSize, .data)
                    case .compressed(let entry): throw compressedError(cluster: cluster, entry: entry)
                    }
                }
                runs = local.runs
                if tableRuns.count < 4096 { tableRuns[[l2Offset, used]] = runs }
            }
            for run in runs where run.offset < rangeLength {
                map.append(offset: rangeStart + run.offset, length: Swift.min(run.length, rangeLength - run.offset), run.state)
            }
        }
        return try map.resolve(parent: parent, path: path)
    }
}
