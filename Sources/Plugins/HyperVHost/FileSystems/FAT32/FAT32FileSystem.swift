import Foundation
import PluginAPI

/// A read-only FAT32 file system (see `FAT32BootSector`, `FAT32Table`, `FAT32Directory`).
///
/// Names: long names (UTF-16) when their checksum matches, else 8.3 names; lookup is
/// case-insensitive and accepts either name. Times: modified (2 s resolution), created (10 ms),
/// accessed (date only), all read as UTC (see `FAT32Directory`); FAT has no change time, no
/// permissions and no owners, so those fields are nil.
///
/// The root entry (`entry([])`) has the name "" and size 0, as do all directories (FAT records
/// no directory size). `volumeExtents` lists every cluster of the chain.
///
/// Identifier: the first cluster of the entry. Entries without a cluster (empty files) get
/// 2^63 + the volume byte offset of their directory record instead, so that two empty files
/// never look like hard links of each other.
final class FAT32FileSystem: GuestFileSystem {
    /// FAT limits a directory to 65,536 records (2 MiB).
    static let maxDirectoryBytes: UInt64 = 65_536 * 32
    static let noClusterFlag: UInt64 = 1 << 63
    static let maxCachedDirectories = 64

    let type = "fat32"
    let label: String?
    let boot: FAT32BootSector
    private let source: BlockSource
    private let table: FAT32Table
    private let lock = NSLock()
    private var directories: [UInt32: [FAT32DirectoryEntry]] = [:]

    static func probe(_ volume: BlockSource) -> Bool {
        guard volume.size >= 512, let raw = try? volume.bytes(at: 0, count: 512) else { return false }
        return FAT32BootSector.looksValid(raw)
    }

    init(volume: BlockSource) throws {
        guard volume.size >= 512 else { throw PluginError(.corrupt, "fat32: the volume (\(volume.size) bytes) is too small") }
        source = volume
        boot = try FAT32BootSector(try volume.bytes(at: 0, count: 512), volumeSize: volume.size)
        table = FAT32Table(source: volume, boot: boot)
        let (_, rootLabel) = try FAT32FileSystem.readDirectory(source, boot, table, cluster: boot.rootCluster, what: "root directory")
        label = rootLabel ?? boot.label
    }

    func list(_ path: [String]) throws -> [FileSystemEntry] {
        let cluster = try directoryCluster(path)
        return try directory(cluster, show(path)).map(makeEntry)
    }

    func entry(_ path: [String]) throws -> FileSystemEntry {
        guard let record = try resolve(path) else {
            return FileSystemEntry(name: "", kind: .directory, size: 0, identifier: UInt64(boot.rootCluster))
        }
        return makeEntry(record)
    }

    func read(_ entry: FileSystemEntry, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard entry.kind == .file else { throw PluginError(.invalid, "fat32: \(entry.name) is a \(entry.kind.rawValue), not a file") }
        guard let end = offset.plus(UInt64(buffer.count)), end <= entry.size else {
            throw PluginError(.invalid, "fat32: \(entry.name): read of \(buffer.count) bytes at \(offset) passes the end of the file (\(entry.size) bytes)")
        }
        guard buffer.count > 0, let base = buffer.baseAddress else { return }
        let runs = try clusterRuns(entry)
        let clusters = runs.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        guard clusters * boot.clusterSize >= entry.size else {
            throw PluginError(.corrupt, "fat32: \(entry.name): the cluster chain ends after \(clusters) clusters, but \(entry.size) bytes need \(entry.size.divideRoundingUp(boot.clusterSize))")
        }
        var fileOffset: UInt64 = 0
        for run in runs {
            let runBytes = UInt64(run.count) * boot.clusterSize
            let from = max(offset, fileOffset), to = min(end, fileOffset + runBytes)
            if from < to {
                let slice = UnsafeMutableRawBufferPointer(start: base + Int(from - offset), count: Int(to - from))
                try source.read(at: boot.offset(ofCluster: run.first) + (from - fileOffset), into: slice)
            }
            fileOffset += runBytes
            if fileOffset >= end { break }
        }
    }

    func volumeExtents(of entry: FileSystemEntry) throws -> [Range<UInt64>] {
        try clusterRuns(entry)
            .map { boot.offset(ofCluster: $0.first)..<boot.offset(ofCluster: $0.first) + UInt64($0.count) * boot.clusterSize }
            .mergedRanges()
    }

    // MARK: - Paths and directories

    private func show(_ path: [String]) -> String { "/" + path.joined(separator: "/") }

    private func makeEntry(_ record: FAT32DirectoryEntry) -> FileSystemEntry {
        let identifier = record.firstCluster != 0 ? UInt64(record.firstCluster) : FAT32FileSystem.noClusterFlag | record.recordOffset
        return FileSystemEntry(name: record.name, kind: record.isDirectory ? .directory : .file,
                               size: record.isDirectory ? 0 : UInt64(record.size), modified: record.modified,
                               accessed: record.accessed, created: record.created, identifier: identifier)
    }

    private func clusterRuns(_ entry: FileSystemEntry) throws -> [FAT32Run] {
        if entry.identifier & FAT32FileSystem.noClusterFlag != 0 { return [] }
        guard entry.identifier <= UInt64(boot.maxCluster) else {
            throw PluginError(.corrupt, "fat32: \(entry.name): first cluster \(entry.identifier) is not within 2...\(boot.maxCluster)")
        }
        return try table.chain(from: UInt32(entry.identifier), entry.name)
    }

    /// The record at `path`; nil for the root directory.
    private func resolve(_ path: [String]) throws -> FAT32DirectoryEntry? {
        var cluster = boot.rootCluster
        var found: FAT32DirectoryEntry?
        for (depth, component) in path.enumerated() {
            let here = Array(path.prefix(depth))
            if let found, !found.isDirectory { throw PluginError(.invalid, "fat32: \(show(here)) is not a directory") }
            guard !component.isEmpty, component != ".", component != "..", !component.contains("/") else {
                throw PluginError(.invalid, "fat32: \(show(path)): invalid path component \"\(component)\"")
            }
            let records = try directory(cluster, show(here))
            let folded = component.uppercased()
            guard let match = records.first(where: { $0.name == component })
                    ?? records.first(where: { $0.name.uppercased() == folded || $0.shortName.uppercased() == folded }) else {
                throw PluginError(.notFound, "fat32: \(show(Array(path.prefix(depth + 1)))): no such file or directory")
            }
            found = match
            cluster = match.firstCluster
        }
        return found
    }

    private func directoryCluster(_ path: [String]) throws -> UInt32 {
        guard let record = try resolve(path) else { return boot.rootCluster }
        guard record.isDirectory else { throw PluginError(.invalid, "fat32: \(show(path)) is not a directory") }
        return record.firstCluster
    }

    /// The records of the directory starting at `cluster` (cached).
    private func directory(_ cluster: UInt32, _ what: String) throws -> [FAT32DirectoryEntry] {
        lock.lock()
        if let cached = directories[cluster] { lock.unlock(); return cached }
        lock.unlock()
        let (records, _) = try FAT32FileSystem.readDirectory(source, boot, table, cluster: cluster, what: what)
        lock.lock()
        if directories.count >= FAT32FileSystem.maxCachedDirectories { directories.removeAll(keepingCapacity: true) }
        directories[cluster] = records
        lock.unlock()
        return records
    }

    private static func readDirectory(_ source: BlockSource, _ boot: FAT32BootSector, _ table: FAT32Table,
                                      cluster: UInt32, what: String) throws -> ([FAT32DirectoryEntry], String?) {
        guard cluster != 0 else { throw PluginError(.corrupt, "fat32: directory \(what) has no first cluster") }
        var parser = FAT32Directory()
        var bytes: UInt64 = 0
        for run in try table.chain(from: cluster, "directory \(what)") {
            let length = UInt64(run.count) * boot.clusterSize
            bytes += length
            guard bytes <= maxDirectoryBytes else {
                throw PluginError(.corrupt, "fat32: directory \(what) is longer than \(maxDirectoryBytes) bytes (65,536 records)")
            }
            let start = boot.offset(ofCluster: run.first)
            let data = try source.bytes(at: start, count: Int(length))
            for index in stride(from: 0, to: data.count, by: 32) {
                parser.add(data[index..<index + 32], offset: start + UInt64(index))
            }
            if parser.ended { break }
        }
        return (parser.entries, parser.volumeLabel)
    }
}
