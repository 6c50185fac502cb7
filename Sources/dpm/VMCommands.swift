import Foundation
import Host
import PluginAPI

/// `dpm vm add|list|show|remove`: the HyperVHost provider's VM inventory.
enum VMCommands {
    static let all = [add, set, list, show, remove]

    static let registrationOptions = [
        OptionSpec(name: "disk", value: "PATH", help: "a virtual disk of the VM (repeat for each disk)", repeatable: true),
        OptionSpec(name: "host", value: "HOST", help: "the host that runs the VM (default: this host)"),
        OptionSpec(name: "storage", value: "KIND", help: "local, csv (cluster shared volume) or smb"),
        OptionSpec(name: "cluster", value: "NAME", help: "the cluster, for VMs on cluster shared volumes"),
        OptionSpec(name: "qmp", value: "SOCKET", help: "the QMP socket of the VM's running QEMU"),
        OptionSpec(name: "guest-agent", value: "SOCKET", help: "the guest agent's socket, for online (frozen) backups"),
        OptionSpec(name: "pre-freeze", value: "CMD", help: "shell command run before the guest is frozen (application hook)"),
        OptionSpec(name: "post-thaw", value: "CMD", help: "shell command run after the guest is thawed"),
    ]

    static func absolute(_ path: String) -> String {
        path.isEmpty || path.hasPrefix("/") || path.hasPrefix("//") || path.hasPrefix("\\\\") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The registration fields given on the command line, as the provider's request keys.
    static func registrationArgs(_ invocation: Invocation) -> [String: JSONValue] {
        var args: [String: JSONValue] = ["name": .string(invocation.positionals[0])]
        if !invocation.arguments.all("disk").isEmpty { args["disks"] = .array(invocation.arguments.all("disk").map { .string(absolute($0)) }) }
        for key in ["host", "storage", "cluster", "pre-freeze", "post-thaw"] {
            if let value = invocation.arguments.value(key) { args[key.replacingOccurrences(of: "-", with: "_")] = .string(value) }
        }
        for key in ["qmp", "guest-agent"] {
            if let value = invocation.arguments.value(key) { args[key.replacingOccurrences(of: "-", with: "_")] = .string(absolute(value)) }
        }
        return args
    }

    static let set = CommandDefinition(
        path: ["vm", "set"], summary: "Change a registered VM (host, QMP link, guest agent, hooks, disks); it keeps its id.",
        arguments: "NAME",
        details: "The VM keeps its UUID, so its chain of recovery points goes on. An empty value (--guest-agent '') removes a setting.",
        options: registrationOptions, positionals: 1...1
    ) { invocation in
        let vm = try provider(invocation).command("vm.set", .object(registrationArgs(invocation)))
        if invocation.json { try invocation.output.emit(vm) } else {
            invocation.output.line("updated VM \(vm["name"]?.stringValue ?? "") (\(vm["id"]?.stringValue ?? ""))")
        }
        return 0
    }

    static func provider(_ invocation: Invocation) throws -> WorkloadProviderHandle {
        try invocation.registry().workload("hyperv-host")
    }

    static let add = CommandDefinition(
        path: ["vm", "add"], summary: "Register a VM (its disks, host and storage) for protection.", arguments: "NAME",
        details: """
        The VM gets a stable UUID that follows it from host to host. Disks are VHDX, VHD, qcow2 or raw files;
        a disk on an SMB 3.0 share is given as //server/share/path (the share must be mounted on this host,
        or mapped with `dpm config set hyperv-host.shares '//server/share=/mount/point'`).
        Refused: components split between local and remote storage, and shares named by IP address.

        A running VM is linked to its QEMU with --qmp SOCKET (give dpm a QMP monitor of its own:
        -qmp unix:SOCKET,server=on,wait=off); its disks are found through QEMU (--disk picks some of them).
        Its backups are online when --guest-agent names the host end of the guest agent's channel and the
        guest can freeze: --pre-freeze/--post-thaw run shell commands on this host around the freeze
        (application consistency). Otherwise the VM is paused for the instant of the snapshot.
        """,
        options: registrationOptions,
        positionals: 1...1
    ) { invocation in
        var args = registrationArgs(invocation)
        if args["disks"] == nil { args["disks"] = .array([]) }
        let vm = try provider(invocation).command("vm.add", .object(args))
        if invocation.json { try invocation.output.emit(vm) } else {
            invocation.output.line("added VM \(vm["name"]?.stringValue ?? "") (\(vm["id"]?.stringValue ?? "")) with \(vm["disks"]?.arrayValue?.count ?? 0) disk(s)"
                                   + (vm["qmp"]?.stringValue.map { ", running under the QEMU at \($0)" } ?? ""))
        }
        return 0
    }

    static let list = CommandDefinition(
        path: ["vm", "list"], summary: "List the registered VMs.", arguments: ""
    ) { invocation in
        let vms = try provider(invocation).command("vm.list").arrayValue ?? []
        if invocation.json { try invocation.output.emit(vms) } else {
            invocation.output.table(["NAME", "HOST", "STORAGE", "DISKS", "ID"], vms.map { vm in
                [vm["name"]?.stringValue ?? "", vm["host"]?.stringValue ?? "", vm["storage"]?.stringValue ?? "",
                 (vm["disks"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue }.joined(separator: ","), vm["id"]?.stringValue ?? ""]
            })
        }
        return 0
    }

    static let show = CommandDefinition(
        path: ["vm", "show"], summary: "Show one registered VM.", arguments: "NAME", positionals: 1...1
    ) { invocation in
        let vm = try provider(invocation).command("vm.show", .object(["name": .string(invocation.positionals[0])]))
        invocation.output.line(String(decoding: try JSONCoding.encode(vm, pretty: true), as: UTF8.self))
        return 0
    }

    static let remove = CommandDefinition(
        path: ["vm", "remove"], summary: "Remove a VM from the inventory (its recovery points stay).", arguments: "NAME",
        positionals: 1...1
    ) { invocation in
        let vm = try provider(invocation).command("vm.remove", .object(["name": .string(invocation.positionals[0])]))
        if invocation.json { try invocation.output.emit(vm) } else { invocation.output.line("removed VM \(vm["name"]?.stringValue ?? "")") }
        return 0
    }
}
