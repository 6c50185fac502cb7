import Foundation
import PluginAPI

/// Contiguous clusters of a chain: `count` clusters from `first`.
struct FAT32Run: Equatable {
    var first: UInt32
    var count: UInt32
}

/// The file allocation table: entry n (4 bytes, little-endian, low 28 bits used) holds the
/// cluster after cluster n in its chain: 0 free, 0x0FFFFFF7 bad, ≥ 0x0FFFFFF8 end of chain,
/// otherwise the next cluster (2 ... maxCluster). Entries 0 and 1 are reserved.
///
/// Chains are followed with Brent's cycle detection (a loop is found within about twice its
/// length, in constant memory) and are never longer than the number of clusters. Parts of the
/// FAT are cached in 64 KiB pieces, and recent chains are cached by their first cluster.
/// Thread-safe.
final class FAT32Table {
    static let pieceBytes = 64 << 10
    static let maxPieces = 64
    static let maxChains = 256

    private let source: BlockSource
    private let boot: FAT32BootSector
    private let lock = NSLock()
    private var pieces: [UInt64: [UInt8]] = [:]
    private var chains: [UInt32: [FAT32Run]] = [:]

    init(source: BlockSource, boot: FAT32BootSector) {
        self.source = source
        self.boot = boot
    }

    /// The raw (28-bit) FAT entry of a valid cluster.
    func entry(_ cluster: UInt32) throws -> UInt32 {
        let byte = UInt64(cluster) * 4
        let piece = byte / UInt64(FAT32Table.pieceBytes)
        lock.lock()
        let cached = pieces[piece]
        lock.unlock()
        let data: [UInt8]
        if let cached {
            data = cached
        } else {
            let start = boot.fatOffset + piece * UInt64(FAT32Table.pieceBytes)
            let fatEnd = boot.fatOffset + (UInt64(boot.maxCluster) + 1) * 4
            let length = Int(min(UInt64(FAT32Table.pieceBytes), fatEnd - start))
            data = try source.bytes(at: start, count: length)
            lock.lock()
            if pieces.count >= FAT32Table.maxPieces { pieces.removeAll(keepingCapacity: true) }
            pieces[piece] = data
            lock.unlock()
        }
        return data.le32(Int(byte % UInt64(FAT32Table.pieceBytes))) & 0x0FFF_FFFF
    }

    /// The chain starting at `first`, as runs; `what` names the owner for messages.
    func chain(from first: UInt32, _ what: @autoclosure () -> String) throws -> [FAT32Run] {
        lock.lock()
        if let cached = chains[first] { lock.unlock(); return cached }
        lock.unlock()
        guard first >= 2, first <= boot.maxCluster else {
            throw PluginError(.corrupt, "fat32: \(what()): first cluster \(first) is not within 2...\(boot.maxCluster)")
        }
        var runs: [FAT32Run] = [FAT32Run(first: first, count: 1)]
        var current = first
        var steps: UInt64 = 1
        // Brent: compare with a checkpoint refreshed at power-of-two distances.
        var checkpoint = first, power: UInt64 = 1, distance: UInt64 = 0
        while true {
            let next = try entry(current)
            if next >= 0x0FFF_FFF8 { break }
            guard next != 0x0FFF_FFF7 else {
                throw PluginError(.corrupt, "fat32: \(what()): the chain reaches bad cluster \(current) after \(steps) clusters")
            }
            guard next >= 2, next <= boot.maxCluster else {
                throw PluginError(.corrupt, "fat32: \(what()): cluster \(current) links to \(next == 0 ? "a free cluster marker" : "cluster \(next)"), not a valid cluster or end of chain")
            }
            guard next != checkpoint, steps <= UInt64(boot.clusterCount) else {
                throw PluginError(.corrupt, "fat32: \(what()): the cluster chain from \(first) loops (cluster \(next) comes back)")
            }
            distance += 1
            if distance == power { checkpoint = next; power *= 2; distance = 0 }
            let last = runs[runs.count - 1]
            if next == last.first + last.count {
                runs[runs.count - 1].count += 1
            } else {
                runs.append(FAT32Run(first: next, count: 1))
            }
            current = next
            steps += 1
        }
        lock.lock()
        if chains.count >= FAT32Table.maxChains { chains.removeAll(keepingCapacity: true) }
        chains[first] = runs
        lock.unlock()
        return runs
    }
}
