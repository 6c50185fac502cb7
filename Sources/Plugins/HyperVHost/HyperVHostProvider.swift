import Foundation
import PluginAPI

/// Host-level VM protection: the VM inventory, snapshots of VMs at rest and of running VMs
/// (over QMP: online or offline, with dirty-bitmap change tracking), the Hyper-V disk
/// formats, and recovery of whole VMs and disks (behaviours 1, 2, 3, 5, 6 and 10).
final class HyperVHostProvider: WorkloadProvider {
    static let version = "0.3.0"

    let descriptor = ProviderDescriptor(
        id: "hyperv-host",
        displayName: "Hyper-V host-level VM protection (VHDX, VHD, qcow2, raw)",
        version: HyperVHostProvider.version,
        kind: .workload,
        capabilities: [.onlineBackup, .offlineBackup, .changeTracking, .blockStreams, .restoreOriginal, .restoreAlternate, .expressFull],
        status: .ready("VMs at rest, and running VMs over QMP (online through the guest agent, else paused; dirty-bitmap "
                       + "change tracking); item-level recovery is not built yet")
    )

    func enumerate(call: HostCall) throws -> [DataSourceDescription] {
        let inventory = try VMInventory(stateDirectory: try call.stateDirectory())
        let shares = call.config("shares")
        return inventory.vms.map { vm in
            var size: UInt64 = 0
            var problem: String?
            for disk in vm.disks {
                do {
                    size += try DiskImageOpener.open(path: try StoragePath(disk.path).localPath(shares: shares), format: disk.format).virtualSize
                } catch {
                    problem = String(describing: error)
                }
            }
            var details: [String: JSONValue] = ["host": .string(vm.host), "storage": .string(vm.storage),
                                                "disks": .array(vm.disks.map { .string($0.path) })]
            if let cluster = vm.cluster { details["cluster"] = .string(cluster) }
            if let qmp = vm.qmp { details["qmp"] = .string(qmp) }
            if let agent = vm.guestAgent { details["guest_agent"] = .string(agent) }
            if let problem { details["problem"] = .string(problem) }
            return DataSourceDescription(id: vm.id, name: vm.name, kind: "vm", size: size, details: .object(details))
        }
    }

    func prepareSnapshot(_ request: SnapshotRequest, call: HostCall) throws -> WorkloadSnapshot {
        let inventory = try VMInventory(stateDirectory: try call.stateDirectory())
        let vm = try inventory.require(request.datasource)
        guard let socket = vm.qmp else {
            return try AtRestSnapshot(vm: vm, shares: call.config("shares"), options: request.options)
        }
        let qmp: QMPClient
        do {
            qmp = try QMPClient(path: socket)
        } catch let error as PluginError where error.code == .notFound {
            // Nothing listens on the QMP socket: QEMU is not running, so the VM is at rest
            // (AtRestSnapshot refuses if another process still holds its disks).
            call.log(.info, "VM \(vm.name): no QEMU answers on \(socket); backing it up at rest")
            return try AtRestSnapshot(vm: vm, shares: call.config("shares"), options: request.options)
        }
        return try RunningSnapshot(vm: vm, qmp: qmp, request: request, call: call)
    }

    func restore(_ request: RestoreRequest, call: HostCall) throws -> JSONValue {
        let restorer = try VMRestorer(call: call)
        return try restorer.restore(request, inventory: try VMInventory(stateDirectory: try call.stateDirectory()), shares: call.config("shares"))
    }

    func browse(_ request: BrowseRequest, call: HostCall) throws -> BrowseReply {
        try GuestBrowser(call: call).browse(request.path)
    }

    func extract(_ request: ExtractRequest, call: HostCall) throws -> JSONValue {
        try ItemExtractor(browser: try GuestBrowser(call: call), directory: request.directory).extract(request.items)
    }

    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue {
        let state = try call.stateDirectory()
        switch request.verb {
        case "vm.add":
            let args = try JSONCoding.decode(VMRegistration.Request.self, from: JSONCoding.encode(request.args ?? .object([:])))
            let vm = try VMRegistration.validate(args, shares: call.config("shares"))
            try VMInventory.locked(state) { try $0.add(vm) }
            return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(vm))
        case "vm.set":
            return try VMInventory.locked(state) { inventory in
                let existing = try inventory.require(request.args?["name"]?.stringValue ?? "")
                let updated = try VMRegistration.revise(existing, with: request.args ?? .object([:]), shares: call.config("shares"))
                try inventory.update(updated)
                return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(updated))
            }
        case "vm.list":
            return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(try VMInventory(stateDirectory: state).vms))
        case "vm.show":
            let vm = try VMInventory(stateDirectory: state).require(request.args?["name"]?.stringValue ?? "")
            return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(vm))
        case "vm.remove":
            let name = request.args?["name"]?.stringValue ?? ""
            let vm = try VMInventory.locked(state) { try $0.remove(name) }
            return try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(vm))
        case "datasource.state":
            let vm = try VMInventory(stateDirectory: state).require(request.args?["id"]?.stringValue ?? "")
            return MigrationProbe(vm: vm).state()
        default:
            throw PluginError(.unsupported, "hyperv-host has no command '\(request.verb)'")
        }
    }
}
