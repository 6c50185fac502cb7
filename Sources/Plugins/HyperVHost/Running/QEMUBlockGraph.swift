import Foundation
import PluginAPI

/// One disk of a running VM as QEMU sees it: the format node that guest I/O goes through,
/// the image file under it, and the dirty bitmaps on that node.
struct RunningDisk: Equatable {
    /// The format node (vhdx, qcow2, vpc, raw) whose content is the virtual disk.
    var node: String
    /// The image file, an absolute local path.
    var file: String
    var format: DiskFormat
    var virtualSize: UInt64
    /// The format's block or cluster size (QEMU's "cluster-size"), 0 when QEMU does not say.
    var clusterSize: UInt64
    /// The guest-facing name for messages: the drive id or the device's qdev path.
    var device: String
}

/// A dirty bitmap on a block node, as `query-named-block-nodes` reports it.
struct DirtyBitmap: Equatable {
    var name: String
    /// Enabled: it records writes as they happen.
    var recording: Bool
    /// Stored in the image file when QEMU closes it (qcow2 only).
    var persistent: Bool
    /// In use by an operation (an NBD export, a job); it cannot be changed meanwhile.
    var busy: Bool
    /// A persistent bitmap QEMU did not close cleanly; it cannot be trusted or used.
    var inconsistent: Bool
}

/// Reads a running VM's block graph over QMP. Parses defensively: QEMU lists anonymous
/// bitmaps (no "name") for its own jobs, and fields come and go between versions.
enum QEMUBlockGraph {
    /// Protocol and filter drivers: nodes with these drivers are never a VM's disk.
    static let nonFormatDrivers: Set<String> = [
        "file", "host_device", "host_cdrom", "nbd", "nfs", "ssh", "iscsi", "rbd", "gluster", "null-co", "null-aio",
        "throttle", "copy-on-read", "copy-before-write", "preallocate", "compress", "blkdebug", "blkverify",
        "blklogwrites", "snapshot-access", "quorum", "replication",
    ]

    /// The disks of the VM: every block device with a medium (`query-block`) or, for a QEMU
    /// with block nodes but no devices, every format node that is not another node's
    /// backing image. Nodes whose name starts with `excludingPrefix` (dpm's own) are skipped.
    static func disks(_ qmp: QMPClient, excludingPrefix: String = "dpm-") throws -> [RunningDisk] {
        let nodes = try qmp.execute("query-named-block-nodes", ["flat": .bool(true)]).arrayValue ?? []
        var disks: [RunningDisk] = []
        for device in try qmp.execute("query-block").arrayValue ?? [] {
            guard let inserted = device["inserted"], let top = inserted["node-name"]?.stringValue else { continue }
            let name = nonEmpty(device["device"]?.stringValue) ?? nonEmpty(device["qdev"]?.stringValue) ?? top
            // Below a filter (throttling, or a backup's copy-before-write), the format node
            // is the one that reports the same image file.
            let format = formatNode(named: top, in: nodes)
                ?? nodes.first { isFormatNode($0, excludingPrefix) && $0["file"]?.stringValue == inserted["file"]?.stringValue }
            guard let format, let disk = try disk(from: format, device: name) else { continue }
            if !disks.contains(where: { $0.node == disk.node }) { disks.append(disk) }
        }
        if disks.isEmpty {
            let backings = Set(nodes.compactMap { $0["backing_file"]?.stringValue })
            for node in nodes where isFormatNode(node, excludingPrefix) {
                guard let file = node["file"]?.stringValue, !backings.contains(file),
                      let disk = try disk(from: node, device: node["node-name"]?.stringValue ?? "?") else { continue }
                disks.append(disk)
            }
            // QEMU lists nodes newest first; stream numbers must not depend on that.
            disks.sort { $0.node < $1.node }
        }
        return disks
    }

    /// The dirty bitmaps of a node; anonymous bitmaps are left out.
    static func bitmaps(_ qmp: QMPClient, node: String) throws -> [DirtyBitmap] {
        let nodes = try qmp.execute("query-named-block-nodes", ["flat": .bool(true)]).arrayValue ?? []
        guard let entry = nodes.first(where: { $0["node-name"]?.stringValue == node }) else {
            throw PluginError(.notFound, "QEMU at \(qmp.path) has no block node '\(node)' any more; was the disk removed from the VM?")
        }
        return (entry["dirty-bitmaps"]?.arrayValue ?? []).compactMap { bitmap in
            guard let name = nonEmpty(bitmap["name"]?.stringValue) else { return nil }
            return DirtyBitmap(name: name, recording: bitmap["recording"]?.boolValue ?? false,
                               persistent: bitmap["persistent"]?.boolValue ?? false, busy: bitmap["busy"]?.boolValue ?? false,
                               inconsistent: bitmap["inconsistent"]?.boolValue ?? false)
        }
    }

    /// Names of the nodes, exports and jobs QEMU has now, for leftover checks.
    static func inventory(_ qmp: QMPClient) throws -> (nodes: [String], exports: [String], jobs: [String]) {
        let nodes = (try qmp.execute("query-named-block-nodes", ["flat": .bool(true)]).arrayValue ?? []).compactMap { $0["node-name"]?.stringValue }
        let exports = (try qmp.execute("query-block-exports").arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        let blockJobs = (try qmp.execute("query-block-jobs").arrayValue ?? []).compactMap { $0["device"]?.stringValue }
        let jobs = (try qmp.execute("query-jobs").arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        return (nodes, exports, Array(Set(blockJobs + jobs)).sorted())
    }

    private static func formatNode(named name: String, in nodes: [JSONValue]) -> JSONValue? {
        nodes.first { $0["node-name"]?.stringValue == name && isFormatNode($0, nil) }
    }

    private static func isFormatNode(_ node: JSONValue, _ excludingPrefix: String?) -> Bool {
        guard let driver = node["drv"]?.stringValue, !nonFormatDrivers.contains(driver), DiskFormat(qemuName: driver) != nil else { return false }
        if let excludingPrefix, node["node-name"]?.stringValue?.hasPrefix(excludingPrefix) == true { return false }
        return true
    }

    private static func disk(from node: JSONValue, device: String) throws -> RunningDisk? {
        guard let name = node["node-name"]?.stringValue, let driver = node["drv"]?.stringValue,
              let format = DiskFormat(qemuName: driver), let file = node["file"]?.stringValue else { return nil }
        guard file.hasPrefix("/") else {
            throw PluginError(.unsupported, "disk \(device) (node \(name)) is not a local file (\(file.prefix(120))); "
                + "dpm backs up running VMs whose disks are image files on this host")
        }
        guard let size = WireJSON.uint64(node["image"]?["virtual-size"]), size > 0 else {
            throw PluginError(.corrupt, "QEMU reports no virtual size for disk \(device) (node \(name), \(file))")
        }
        return RunningDisk(node: name, file: file, format: format, virtualSize: size,
                           clusterSize: WireJSON.uint64(node["image"]?["cluster-size"]) ?? 0, device: device)
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}
