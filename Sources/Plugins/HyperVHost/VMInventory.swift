import Foundation
import PluginAPI

/// One protected VM: a stable UUID that follows it from host to host, its disks, where
/// they live, and (for running VMs) how to reach its QEMU.
struct VMRecord: Codable, Equatable {
    struct Disk: Codable, Equatable {
        /// The path as the user registered it (local, or a UNC path on an SMB share).
        var path: String
        var format: DiskFormat
        /// For a running VM: QEMU's node name for the disk when it was registered (disks are
        /// matched by path at each backup, since node names change when QEMU restarts).
        var node: String?
    }

    var id: String
    var name: String
    var host: String
    var storage: String
    var cluster: String?
    var disks: [Disk]
    /// The running VM's QMP socket (`dpm vm add --qmp`); nil for a VM backed up at rest.
    var qmp: String?
    /// The guest agent's socket (`--guest-agent`): online backups freeze through it.
    var guestAgent: String?
    /// Application hooks (`--pre-freeze`, `--post-thaw`), shell commands run on this host.
    var preFreeze: String?
    var postThaw: String?
    var created: Date
}

/// The HyperVHost provider's VM inventory, `STATE/inventory.json`, rewritten atomically on
/// every change. Changes from concurrent dpm processes are serialised by a lock file.
final class VMInventory {
    let file: String
    private(set) var vms: [VMRecord] = []

    init(stateDirectory: String) throws {
        file = stateDirectory + "/inventory.json"
        if FileManager.default.fileExists(atPath: file) {
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                vms = try JSONCoding.decode([VMRecord].self, from: data)
            } catch {
                throw PluginError(.corrupt, "VM inventory \(file) is damaged (\(error)); restore it from a copy or remove it and add the VMs again")
            }
        }
    }

    func find(_ nameOrID: String) -> VMRecord? {
        vms.first { $0.id == nameOrID } ?? vms.first { $0.name == nameOrID }
    }

    func require(_ nameOrID: String) throws -> VMRecord {
        guard let vm = find(nameOrID) else {
            throw PluginError(.notFound, "no VM '\(nameOrID)' in the inventory; see `dpm vm list`, or add it with `dpm vm add`")
        }
        return vm
    }

    func add(_ vm: VMRecord) throws {
        guard find(vm.name) == nil else { throw PluginError(.invalid, "a VM named '\(vm.name)' is already registered; remove it first or choose another name") }
        vms.append(vm)
        try save()
    }

    func update(_ vm: VMRecord) throws {
        guard let index = vms.firstIndex(where: { $0.id == vm.id }) else { throw PluginError(.notFound, "VM \(vm.name) vanished from the inventory") }
        vms[index] = vm
        try save()
    }

    func remove(_ nameOrID: String) throws -> VMRecord {
        let vm = try require(nameOrID)
        vms.removeAll { $0.id == vm.id }
        try save()
        return vm
    }

    private func save() throws {
        let data = try JSONCoding.encode(vms, pretty: true)
        let temporary = file + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw PluginError(.io, "cannot write \(temporary)")
        }
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(temporary, file) == 0 else { throw PluginError(.io, "cannot replace \(file): \(String(cString: strerror(errno)))") }
    }

    /// Runs `body` holding the inventory lock, on a freshly loaded inventory.
    static func locked<T>(_ stateDirectory: String, _ body: (VMInventory) throws -> T) throws -> T {
        let lockPath = stateDirectory + "/inventory.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PluginError(.io, "cannot open \(lockPath)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return try body(try VMInventory(stateDirectory: stateDirectory))
    }
}
