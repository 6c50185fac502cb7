import Foundation
import PluginAPI

/// `dpm vm add`: validates a VM before it enters the inventory.
///
/// Refusals follow behaviour 5 of PRODUCT.md: components split between local and remote
/// storage, an SMB share addressed by IP address, a storage kind that contradicts the
/// paths. Every disk must open as a supported image.
struct VMRegistration {
    struct Request: Codable {
        var name: String
        var disks: [String]
        var host: String?
        var storage: String?
        var cluster: String?
        var qmp: String?
        var guestAgent: String?
    }

    static func validate(_ request: Request, shares: String?) throws -> VMRecord {
        let name = request.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 100, !name.contains("/"), !name.contains("\0") else {
            throw PluginError(.invalid, "VM name '\(request.name)' must be 1-100 characters without '/'")
        }
        guard !request.disks.isEmpty || request.qmp != nil else {
            throw PluginError(.invalid, "VM \(name) needs at least one --disk PATH (or --qmp SOCKET for a running VM)")
        }
        let paths = request.disks.map(StoragePath.init)
        if let ip = paths.first(where: \.serverIsIPAddress) {
            throw PluginError(.invalid, "VM \(name): \(ip.original) names its SMB server by IP address, which is not supported; "
                + "address the share by the file server's name (\\\\server\\share)")
        }
        let remote = paths.filter(\.isRemote)
        if !remote.isEmpty && remote.count != paths.count {
            throw PluginError(.invalid, "VM \(name) has components split between local storage (\(paths.first { !$0.isRemote }!.original)) "
                + "and a remote SMB share (\(remote[0].original)), which is not supported; keep all of a VM's files on one kind of storage")
        }
        let inferred = remote.isEmpty ? "local" : "smb"
        let storage = request.storage ?? inferred
        switch storage {
        case "local", "csv":
            guard remote.isEmpty else {
                throw PluginError(.invalid, "VM \(name): --storage \(storage) but the disks are on an SMB share; use --storage smb")
            }
        case "smb":
            guard remote.count == paths.count else {
                throw PluginError(.invalid, "VM \(name): --storage smb needs UNC disk paths (//server/share/…)")
            }
        default:
            throw PluginError(.invalid, "--storage must be local, csv or smb, not '\(storage)'")
        }
        if storage == "csv" && (request.cluster ?? "").isEmpty {
            throw PluginError(.invalid, "VM \(name) is on a cluster shared volume; name its cluster with --cluster NAME")
        }
        var disks: [VMRecord.Disk] = []
        for path in paths {
            let local = try path.localPath(shares: shares)
            guard local.hasPrefix("/") else {
                throw PluginError(.invalid, "disk path \(path.original) must be absolute")
            }
            let image = try DiskImageOpener.open(path: local)
            disks.append(.init(path: path.isRemote ? path.original : URL(fileURLWithPath: local).standardizedFileURL.path, format: image.format))
        }
        return VMRecord(id: UUID().uuidString.lowercased(), name: name, host: request.host ?? ProcessInfo.processInfo.hostName,
                        storage: storage, cluster: request.cluster, disks: disks, qmp: request.qmp, guestAgent: request.guestAgent,
                        created: Date())
    }
}
