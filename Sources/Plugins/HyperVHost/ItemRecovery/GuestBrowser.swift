import Foundation
import PluginAPI

/// Item-level recovery inside the recovery point bound to a call (behaviours 1 and 10).
///
/// Paths: `/` lists the virtual disks (`disk0`, `disk1` …); `/disk0` lists its volumes
/// (`part1` … or `volume`); `/disk0/part1/Users/a.txt` is a file inside the volume's file
/// system. Everything is read through the host, which fetches only the chunks it touches.
final class GuestBrowser {
    let call: HostCall
    let manifest: RecoveryPointManifest
    let diskNames: [String]
    private var disks: [Int: BlockSource] = [:]
    private var volumes: [Int: [GuestVolume]] = [:]

    init(call: HostCall) throws {
        self.call = call
        manifest = try call.recoveryPointManifest()
        diskNames = (manifest.metadata?["vm"]?["disks"]?.arrayValue ?? []).map { disk in
            ((disk["path"]?.stringValue ?? "").replacingOccurrences(of: "\\", with: "/") as NSString).lastPathComponent
        }
    }

    /// Where a path leads.
    enum Target {
        case root
        case disk(Int)
        case volume(Int, GuestVolume)
        case item(Int, GuestVolume, [String])
    }

    func disk(_ index: Int) throws -> BlockSource {
        if let cached = disks[index] { return cached }
        guard index >= 0, index < manifest.streams.count else {
            throw PluginError(.notFound, "recovery point \(manifest.rp) has no disk\(index); it has \(manifest.streams.count)")
        }
        let source = CachedBlockSource(RecoveryPointSource(call: call, stream: index, size: manifest.streams[index].size))
        disks[index] = source
        return source
    }

    func volumes(of index: Int) throws -> [GuestVolume] {
        if let cached = volumes[index] { return cached }
        let found = try GuestVolumes.scan(try disk(index))
        volumes[index] = found
        return found
    }

    func resolve(_ path: String) throws -> Target {
        let parts = path.split(separator: "/").map(String.init).filter { !$0.isEmpty && $0 != "." }
        guard !parts.contains("..") else { throw PluginError(.invalid, "path \(path) may not contain '..'") }
        guard let first = parts.first else { return .root }
        guard first.hasPrefix("disk"), let index = Int(first.dropFirst(4)) else {
            throw PluginError(.notFound, "\(path): the first part names a disk (disk0, disk1 …); browse / to see them")
        }
        _ = try disk(index)
        guard parts.count > 1 else { return .disk(index) }
        guard let volume = try volumes(of: index).first(where: { $0.name == parts[1] }) else {
            throw PluginError(.notFound, "\(path): disk\(index) has no volume \(parts[1]); browse /disk\(index) to see its volumes")
        }
        guard parts.count > 2 || path.hasSuffix("/") else { return .volume(index, volume) }
        return .item(index, volume, Array(parts.dropFirst(2)))
    }

    static func entryJSON(_ entry: FileSystemEntry) -> BrowseEntry {
        BrowseEntry(name: entry.name, type: entry.kind.rawValue, size: entry.size, mtime: entry.modified)
    }

    func browse(_ path: String) throws -> BrowseReply {
        switch try resolve(path) {
        case .root:
            return BrowseReply(entries: manifest.streams.enumerated().map { index, stream in
                BrowseEntry(name: "disk\(index)", type: "disk", size: stream.size)
            })
        case .disk(let index):
            return BrowseReply(entries: try volumes(of: index).map { volume in
                BrowseEntry(name: volume.name, type: "volume", size: volume.size)
            })
        case .volume(_, let volume), .item(_, let volume, []):
            guard let fileSystem = volume.fileSystem else { throw unreadable(volume) }
            return BrowseReply(entries: try fileSystem.list([]).map(Self.entryJSON))
        case .item(_, let volume, let components):
            guard let fileSystem = volume.fileSystem else { throw unreadable(volume) }
            let entry = try fileSystem.entry(components)
            guard entry.kind == .directory else { return BrowseReply(entries: [Self.entryJSON(entry)]) }
            return BrowseReply(entries: try fileSystem.list(components).map(Self.entryJSON))
        }
    }

    /// Volume details for `dpm browse` (file system, label, problems).
    func volumeDetails(_ index: Int) throws -> [JSONValue] {
        try volumes(of: index).map { volume in
            .object(["name": .string(volume.name), "start": .number(Double(volume.start)), "size": .number(Double(volume.size)),
                     "file_system": volume.fileSystemType.map { .string($0) } ?? .null, "label": volume.label.map { .string($0) } ?? .null,
                     "problem": volume.problem.map { .string($0) } ?? .null])
        }
    }

    func unreadable(_ volume: GuestVolume) -> PluginError {
        PluginError(.unsupported, "volume \(volume.name) holds " + (volume.fileSystemType.map { "a \($0) volume" } ?? "no file system dpm reads")
            + (volume.problem.map { " (\($0))" } ?? "") + "; copy it whole with --item /diskN/\(volume.name)")
    }
}
