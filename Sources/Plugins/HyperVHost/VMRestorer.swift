import Foundation
import PluginAPI

/// Recovers a VM's disks from the recovery point bound to the call (behaviour 10):
/// - `original`: replaces the disks of the VM in the inventory. Each disk is written
///   beside the original and renamed over it only after every disk was written.
/// - `alternate`: a full copy of the VM (disks and vm.json) in DIR/NAME, in any writable format.
/// - `copy-disks`: the virtual disks only, in DIR.
struct VMRestorer {
    struct DiskMetadata {
        var path: String
        var format: DiskFormat
        var virtualSize: UInt64
        var blockSize: UInt64
    }

    let call: HostCall
    let manifest: RecoveryPointManifest
    let vmName: String
    let vmID: String
    let disks: [DiskMetadata]

    init(call: HostCall) throws {
        self.call = call
        manifest = try call.recoveryPointManifest()
        guard let vm = manifest.metadata?["vm"], let name = vm["name"]?.stringValue, let id = vm["id"]?.stringValue,
              let list = vm["disks"]?.arrayValue else {
            throw PluginError(.corrupt, "recovery point \(manifest.rp) carries no VM description; it was not made by hyperv-host")
        }
        vmName = name
        vmID = id
        let rp = manifest.rp
        disks = try list.enumerated().map { index, disk in
            guard let path = disk["path"]?.stringValue, let format = disk["format"]?.stringValue.flatMap(DiskFormat.init(rawValue:)),
                  let size = disk["virtual_size"]?.numberValue else {
                throw PluginError(.corrupt, "recovery point \(rp): disk \(index) is described incompletely")
            }
            return DiskMetadata(path: path, format: format, virtualSize: UInt64(size), blockSize: UInt64(disk["block_size"]?.numberValue ?? 0))
        }
        guard disks.count == manifest.streams.count else {
            throw PluginError(.corrupt, "recovery point \(manifest.rp) lists \(disks.count) disks but holds \(manifest.streams.count) streams")
        }
    }

    func restore(_ request: RestoreRequest, inventory: VMInventory, shares: String?) throws -> JSONValue {
        let requested = try request.format.map { name -> DiskFormat in
            guard let format = DiskFormat(rawValue: name), format != .qcow2 else {
                throw PluginError(.invalid, "--format must be vhdx, vhd or raw, not '\(name)'")
            }
            return format
        }
        var plan: [(stream: Int, target: String, format: DiskFormat)] = []
        var swapOver = false
        switch request.target {
        case .original:
            guard let vm = inventory.find(vmID) else {
                throw PluginError(.notFound, "VM \(vmName) (\(vmID)) is no longer in the inventory, so it has no original location; "
                    + "recover it with --alternate DIR or --copy-disks DIR")
            }
            guard vm.disks.count == disks.count else {
                throw PluginError(.invalid, "VM \(vmName) now has \(vm.disks.count) disks but the recovery point has \(disks.count); recover with --alternate DIR")
            }
            for (index, disk) in vm.disks.enumerated() {
                let local = try StoragePath(disk.path).localPath(shares: shares)
                if DiskLockProbe.isLockedByAnotherProcess(local) {
                    throw PluginError(.invalid, "VM \(vmName) is running (\(local) is locked); shut it down before recovering it in place")
                }
                guard disk.format != .qcow2 else {
                    throw PluginError(.unsupported, "disk \(local) is qcow2, which dpm cannot write in place; recover with --alternate DIR --format vhdx|raw")
                }
                plan.append((index, local, requested ?? disk.format))
            }
            swapOver = true
        case .alternate, .copyDisks:
            guard let directory = request.directory, directory.hasPrefix("/") || directory.hasPrefix("//") || directory.hasPrefix("\\\\") else {
                throw PluginError(.invalid, "recovery to an alternate location needs an absolute directory")
            }
            let remote = StoragePath(directory).isRemote
            let local = try StoragePath(directory).localPath(shares: shares)
            let host = request.options?["host"]?.stringValue
            if request.target == .alternate && host != nil && (remote || StoragePath.isOnSMBMount(local)) {
                throw PluginError(.unsupported, "recovering VM \(vmName) to host \(host!) whose storage is a remote SMB share is not supported; "
                    + "recover to the host's local storage, or copy the disks with --copy-disks")
            }
            let base = request.target == .alternate ? local + "/" + vmName : local
            let shownBase = request.target == .alternate ? directory + "/" + vmName : directory
            for (index, disk) in disks.enumerated() {
                let format = requested ?? (disk.format == .qcow2 ? .vhdx : disk.format)
                let name = VMRestorer.fileName(disk.path, format: format)
                let shown = shownBase + "/" + name
                if (remote || StoragePath.isOnSMBMount(local)) && shown.count >= 260 {
                    throw PluginError(.invalid, "path \(shown) is \(shown.count) characters; SMB recovery targets need every path under 260")
                }
                plan.append((index, base + "/" + name, format))
            }
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        }
        if Set(plan.map(\.target)).count != plan.count {
            throw PluginError(.invalid, "two disks of \(vmName) would be written to the same file; recover them to separate folders")
        }

        var written: [JSONValue] = []
        var temporaries: [(String, String)] = []
        do {
            for item in plan {
                let temporary = swapOver ? item.target + ".dpm-restore-\(getpid())" : item.target + ".dpm-partial"
                try write(stream: item.stream, to: temporary, format: item.format)
                temporaries.append((temporary, item.target))
                written.append(.object(["path": .string(item.target), "format": .string(item.format.rawValue),
                                        "virtual_size": .number(Double(disks[item.stream].virtualSize))]))
            }
        } catch {
            for (temporary, _) in temporaries { unlink(temporary) }
            throw error
        }
        for (temporary, target) in temporaries {
            guard rename(temporary, target) == 0 else {
                throw PluginError(.io, "cannot move \(temporary) over \(target): \(String(cString: strerror(errno)))")
            }
        }
        if request.target == .alternate, let first = plan.first {
            let description: JSONValue = .object([
                "name": .string(vmName), "id": .string(vmID), "host": .string(request.options?["host"]?.stringValue ?? ProcessInfo.processInfo.hostName),
                "recovered_from": .string(manifest.rp), "disks": .array(written),
            ])
            let file = (first.target as NSString).deletingLastPathComponent + "/vm.json"
            _ = FileManager.default.createFile(atPath: file, contents: try JSONCoding.encode(description, pretty: true))
        }
        return .object(["vm": .string(vmName), "rp": .string(manifest.rp), "target": .string(request.target.rawValue), "written": .array(written)])
    }

    /// Streams one disk from the recovery point into a new image, reading only the ranges
    /// that hold data.
    func write(stream: Int, to path: String, format: DiskFormat) throws {
        let disk = disks[stream]
        let blockSize: UInt64? = format == .vhdx && disk.format == .vhdx && disk.blockSize > 0 ? disk.blockSize : nil
        let writer = try DiskImageWriters.create(path: path, format: format, virtualSize: disk.virtualSize, blockSize: blockSize)
        let extents = try call.recoveryPointMap(stream: stream)
        let total = extents.reduce(UInt64(0)) { $0 + $1.length }
        let piece = 4 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 4096)
        defer { buffer.deallocate() }
        var done: UInt64 = 0
        do {
            for extent in extents {
                var offset = extent.offset
                while offset < extent.end {
                    let count = Int(min(UInt64(piece), extent.end - offset))
                    let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                    try call.readRecoveryPoint(stream: stream, offset: offset, into: slice)
                    try writer.write(at: offset, UnsafeRawBufferPointer(slice))
                    offset += UInt64(count)
                    done += UInt64(count)
                    call.progress(done: done, total: total)
                }
                try call.checkCancelled()
            }
            try writer.finish()
        } catch {
            unlink(path)
            throw error
        }
    }

    /// The recovered file's name: the original base name with the target format's extension.
    static func fileName(_ original: String, format: DiskFormat) -> String {
        let base = (original.replacingOccurrences(of: "\\", with: "/") as NSString).lastPathComponent
        let stem = (base as NSString).deletingPathExtension
        let safe = stem.isEmpty || stem == "." || stem == ".." ? "disk" : stem
        return safe + "." + (format == .vhd ? "vhd" : format.rawValue)
    }
}
