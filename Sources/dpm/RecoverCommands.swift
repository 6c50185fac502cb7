import Foundation
import Host

/// `dpm recover`.
enum RecoverCommands {
    static let all = [recover]

    static let recover = CommandDefinition(
        path: ["recover"], summary: "Recover a data source from a recovery point.", arguments: "DATASOURCE",
        details: """
        Targets:
          --raw DIR   write every stream (virtual disk) of the point as a raw file in DIR
        """,
        options: [
            OptionSpec(name: "rp", value: "ID|latest", help: "the recovery point (default: latest)"),
            OptionSpec(name: "raw", value: "DIR", help: "write each stream as a raw (sparse) file in DIR"),
        ],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let source = try service.knownDataSource(invocation.positionals[0])
        let point = try service.recoveryPoint(source, invocation.arguments.value("rp") ?? "latest")
        guard let directory = invocation.arguments.value("raw") else {
            throw HostError(.usage, "choose a target: --raw DIR (see `dpm recover --help`)")
        }
        let bar = ProgressBar("recover \(source.name)", output: invocation.output)
        let report = try service.restoreRaw(point, directory: directory, onProgress: bar.callback)
        bar.finish()
        if invocation.json { try invocation.output.emit(report) } else {
            for file in report.files { invocation.output.line("wrote \(file)") }
            invocation.output.line("recovered \(source.name) from \(point.id): \(ByteFormat.string(report.bytes)), \(report.chunksRead) chunks read")
        }
        return 0
    }
}
