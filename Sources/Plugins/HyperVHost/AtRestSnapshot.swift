import Foundation
import PluginAPI

/// A snapshot of a VM that is powered off: its disk files are read as they are, and are
/// consistent by definition.
///
/// Change tracking at rest: the token records each disk file's device, inode, size and
/// change time (ctime, which no user can set). When none changed, nothing did, and the
/// incremental reads nothing; when one changed, the host hashes its allocated blocks.
final class AtRestSnapshot: WorkloadSnapshot {
    let vm: VMRecord
    let images: [DiskImage]
    let localPaths: [String]
    let description: SnapshotDescription
    private let fingerprints: [String]

    init(vm: VMRecord, shares: String?, options: JSONValue?) throws {
        self.vm = vm
        localPaths = try vm.disks.map { try StoragePath($0.path).localPath(shares: shares) }
        for path in localPaths where DiskLockProbe.isLockedByAnotherProcess(path) {
            throw PluginError(.invalid, "VM \(vm.name): disk \(path) is open in a running VM (another process locks it); "
                + "link the VM to its QEMU with `dpm vm add \(vm.name) --qmp SOCKET` to back it up while running, or shut it down")
        }
        var images: [DiskImage] = []
        for (disk, path) in zip(vm.disks, localPaths) {
            let image = try DiskImageOpener.open(path: path, format: disk.format)
            images.append(image)
        }
        self.images = images
        fingerprints = localPaths.map(AtRestSnapshot.fingerprint)

        if options?["ignore_scratch_space"]?.boolValue != true {
            let churn = options?["churn_rate"]?.numberValue ?? 0.1
            let backups = Int(options?["concurrent_backups"]?.numberValue ?? 1)
            try ScratchSpace.check(vm: vm.name, paths: localPaths, sizes: images.map(\.virtualSize), churnRate: churn, backups: backups)
        }

        let disks: [JSONValue] = zip(vm.disks, images).map { disk, image in
            .object(["path": .string(disk.path), "format": .string(image.format.rawValue),
                     "virtual_size": .number(Double(image.virtualSize)), "block_size": .number(Double(image.blockSize))])
        }
        description = SnapshotDescription(
            datasource: vm.id, consistency: .application,
            reason: "the VM is powered off (at rest): its disks are consistent by definition", pauseMs: 0,
            streams: images.enumerated().map { StreamDescription(name: "disk\($0.offset)", kind: .block, size: $0.element.virtualSize) },
            metadata: .object(["vm": .object([
                "id": .string(vm.id), "name": .string(vm.name), "host": .string(vm.host), "storage": .string(vm.storage),
                "cluster": vm.cluster.map { .string($0) } ?? .null, "disks": .array(disks), "state": .string("at-rest"),
            ])]))
    }

    /// The allocation map, with page files and swap marked excluded (restored as zeros).
    func extents(stream: Int, call: HostCall) throws -> [Extent] {
        let exclusions = PageFileExclusion.find(on: DiskImageSource(images[stream]))
        for exclusion in exclusions {
            call.log(.info, "\(vm.name) disk\(stream): excluding \(exclusion.what) (\(exclusion.range.count) bytes)")
        }
        excluded[stream] = exclusions.map { "disk\(stream) \($0.what): \($0.range.count) bytes" }
        return ExtentOverlay.exclude(exclusions.map(\.range), from: try images[stream].allocationMap())
    }

    /// What extents() excluded, per stream, for the finish notes.
    private var excluded: [Int: [String]] = [:]

    /// Unchanged files have no changes; a changed file cannot vouch (nil: hash it).
    func changes(stream: Int, since token: String, call: HostCall) throws -> [Extent]? {
        let previous = AtRestSnapshot.parse(token)
        guard stream < previous.count, previous[stream] == fingerprints[stream],
              AtRestSnapshot.fingerprint(localPaths[stream]) == fingerprints[stream] else { return nil }
        return []
    }

    func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try images[stream].read(at: offset, into: buffer)
    }

    func finish(committed: Bool, call: HostCall) throws -> SnapshotFinish {
        // A file that changed during the backup makes the token useless: hash next time.
        let now = localPaths.map(AtRestSnapshot.fingerprint)
        guard now == fingerprints else {
            return SnapshotFinish(token: nil, notes: ["a disk of \(vm.name) changed during the backup; the next backup hashes every block"] + exclusionNotes)
        }
        // File times tick coarsely (a few ms): a write in the same tick as the last change
        // would leave the change time as it is. Trust the token only for files whose last
        // change is older than any such tick.
        guard localPaths.allSatisfy({ AtRestSnapshot.changedSecondsAgo($0) >= 2 }) else { return SnapshotFinish(token: nil, notes: exclusionNotes) }
        return SnapshotFinish(token: "at-rest-v1;" + fingerprints.joined(separator: ";"), notes: exclusionNotes)
    }

    var exclusionNotes: [String] {
        excluded.keys.sorted().flatMap { excluded[$0]! }.map { "excluded \($0) (restored as zeros)" }
    }

    static func fingerprint(_ path: String) -> String {
        var status = stat()
        guard stat(path, &status) == 0 else { return "missing" }
        return "\(status.st_dev):\(status.st_ino):\(status.st_size):\(status.st_ctim.tv_sec).\(status.st_ctim.tv_nsec)"
    }

    static func changedSecondsAgo(_ path: String) -> Double {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        let changed = Double(status.st_ctim.tv_sec) + Double(status.st_ctim.tv_nsec) / 1e9
        return Date().timeIntervalSince1970 - changed
    }

    static func parse(_ token: String) -> [String] {
        guard token.hasPrefix("at-rest-v1;") else { return [] }
        return token.dropFirst("at-rest-v1;".count).split(separator: ";", omittingEmptySubsequences: false).map(String.init)
    }
}
