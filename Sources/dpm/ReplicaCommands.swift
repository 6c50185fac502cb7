import Foundation
import Host

/// `dpm replica export|import`: offline replica creation on removable media.
enum ReplicaCommands {
    static let all = [export, importCommand]

    static let export = CommandDefinition(
        path: ["replica", "export"], summary: "Write a data source's recovery point, with its chunks, to a folder (removable media).",
        arguments: "DATASOURCE DIR",
        details: "At the protecting server, create the group with --replica offline:DIR (or run `dpm replica import`).",
        options: [OptionSpec(name: "rp", value: "ID|latest", help: "the recovery point to export (default: latest)")],
        positionals: 2...2
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let description = try ReplicaTransfer(service: service).export(invocation.positionals[0], rp: invocation.arguments.value("rp") ?? "latest",
                                                                       to: invocation.positionals[1])
        if invocation.json { try invocation.output.emit(description) } else {
            invocation.output.line("exported \(description.datasourceName) \(description.rp): \(description.chunks) chunks, "
                                   + "\(ByteFormat.string(description.bytes)) to \(invocation.positionals[1])")
        }
        return 0
    }

    static let importCommand = CommandDefinition(
        path: ["replica", "import"], summary: "Import an exported replica as a new data source's first recovery point.",
        arguments: "DATASOURCE DIR",
        details: """
        Once its chunks are durable, the imported point is checked as a backup's initial replica is: every chunk
        re-read from storage (O_DIRECT), decoded and re-hashed. Damage marks it damaged and exits 3.
        """,
        positionals: 2...2
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let (source, _) = try service.resolveDataSource(invocation.positionals[0])
        let imported = try ReplicaTransfer(service: service).importReplica(from: invocation.positionals[1], into: source)
        let check = imported.verification
        if invocation.json { try invocation.output.emit(imported) } else {
            invocation.output.line("imported \(source.name) as recovery point \(imported.recoveryPoint.id)")
            invocation.output.line("  " + check.outcome)
        }
        // Exit 3, as `dpm verify` does, when the check of the imported point found damage.
        return check.passed ? 0 : 3
    }
}
