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
        var preFreeze: String?
        var postThaw: String?
    }

    /// `dpm vm set`: the VM's registration with the given fields changed (an empty string
    /// clears an optional one), validated as a new registration would be; the VM keeps its
    /// id and creation time, so its recovery points stay one chain.
    static func revise(_ vm: VMRecord, with changes: JSONValue, shares: String?) throws -> VMRecord {
        func optional(_ key: String, _ current: String?) -> String? {
            guard let value = changes[key]?.stringValue else { return current }
            return value.isEmpty ? nil : value
        }
        let disks = changes["disks"]?.arrayValue?.compactMap(\.stringValue) ?? vm.disks.map(\.path)
        let request = Request(name: vm.name, disks: disks, host: optional("host", vm.host), storage: optional("storage", vm.storage),
                              cluster: optional("cluster", vm.cluster), qmp: optional("qmp", vm.qmp), guestAgent: optional("guest_agent", vm.guestAgent),
                              preFreeze: optional("pre_freeze", vm.preFreeze), postThaw: optional("post_thaw", vm.postThaw))
        var revised = try validate(request, shares: shares)
        revised.id = vm.id
        revised.created = vm.created
        return revised
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
        if request.qmp == nil, request.guestAgent != nil || request.preFreeze != nil || request.postThaw != nil {
            throw PluginError(.invalid, "VM \(name): --guest-agent, --pre-freeze and --post-thaw are for running VMs; link the VM to its QEMU with --qmp SOCKET")
        }
        if let qmp = request.qmp {
            return VMRecord(id: UUID().uuidString.lowercased(), name: name, host: request.host ?? ProcessInfo.processInfo.hostName,
                            storage: storage, cluster: request.cluster, disks: try runningDisks(request, name: name, qmp: qmp),
                            qmp: qmp, guestAgent: request.guestAgent, preFreeze: request.preFreeze, postThaw: request.postThaw,
                            created: Date())
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
                        storage: storage, cluster: request.cluster, disks: disks, created: Date())
    }

    /// A running VM's disks, found through its QEMU (`query-block`): all of them, or those
    /// named with --disk, each of which must be attached to the VM.
    static func runningDisks(_ request: Request, name: String, qmp: String) throws -> [VMRecord.Disk] {
        guard qmp.hasPrefix("/") else { throw PluginError(.invalid, "VM \(name): --qmp \(qmp) must be an absolute socket path") }
        if let agent = request.guestAgent {
            var status = stat()
            guard agent.hasPrefix("/"), stat(agent, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else {
                throw PluginError(.invalid, "VM \(name): --guest-agent \(agent) is not a unix socket; give the host end of the guest agent's "
                    + "channel (-chardev socket,path=\(agent),server=on,wait=off,id=qga0)")
            }
        }
        let client: QMPClient
        do {
            client = try QMPClient(path: qmp, timeout: 10)
        } catch let error as PluginError where error.code == .notFound {
            throw PluginError(.notFound, "VM \(name): no QEMU answers on \(qmp); start the VM with -qmp unix:\(qmp),server=on,wait=off "
                + "(a monitor of dpm's own), then add it again")
        }
        defer { client.close() }
        let live = try QEMUBlockGraph.disks(client)
        guard !live.isEmpty else {
            throw PluginError(.invalid, "VM \(name): the QEMU at \(qmp) has no disk images attached; nothing to protect")
        }
        var chosen = live
        if !request.disks.isEmpty {
            chosen = try request.disks.map { path in
                let wanted = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
                guard let disk = live.first(where: { URL(fileURLWithPath: $0.file).resolvingSymlinksInPath().path == wanted }) else {
                    throw PluginError(.invalid, "VM \(name): --disk \(path) is not attached to the QEMU at \(qmp) (it has \(live.map(\.file).joined(separator: ", ")))")
                }
                return disk
            }
        }
        return chosen.map { VMRecord.Disk(path: $0.file, format: $0.format, node: $0.node) }
    }
}
