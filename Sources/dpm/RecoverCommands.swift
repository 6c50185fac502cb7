import Foundation
import Host
import PluginAPI

/// `dpm recover`.
enum RecoverCommands {
    static let all = [recover]

    static let recover = CommandDefinition(
        path: ["recover"], summary: "Recover a data source from a recovery point.", arguments: "DATASOURCE",
        details: """
        Choose one target:
          --original            replace the VM's disks where they are (written beside them, then swapped)
          --alternate DIR       a full copy of the VM in DIR/NAME (disks and vm.json); --host, --format
          --copy-disks DIR      the virtual disks only, in DIR; --format
          --raw DIR             every stream of the point as a raw sparse file (any provider)
          --to-folder DIR --item PATH [--item PATH …]
                                files and folders from inside the VM (see `dpm browse`); a volume
                                (/disk0/part1) or a disk (/disk0) is copied as a raw image
        --format is vhdx, vhd or raw (default: the disk's own format; qcow2 disks become vhdx).
        A point kept only on tape or online (see `dpm rp list`) is staged into the disk store first and
        then recovered like any other; --from tape|online reads the long-term copy even when the disk
        point still exists.
        """,
        options: RecoverySource.options + [
            OptionSpec(name: "original", value: nil, help: "replace the VM's disks in place"),
            OptionSpec(name: "alternate", value: "DIR", help: "write a full copy of the VM under DIR"),
            OptionSpec(name: "copy-disks", value: "DIR", help: "write the virtual disks only, into DIR"),
            OptionSpec(name: "raw", value: "DIR", help: "write each stream as a raw (sparse) file in DIR"),
            OptionSpec(name: "to-folder", value: "DIR", help: "item-level recovery into DIR (with --item)"),
            OptionSpec(name: "item", value: "PATH", help: "a file, folder, volume or disk to copy (repeat)", repeatable: true),
            OptionSpec(name: "format", value: "FORMAT", help: "vhdx, vhd or raw for --alternate and --copy-disks"),
            OptionSpec(name: "host", value: "HOST", help: "the host the VM is recovered for (--alternate)"),
            OptionSpec(name: "throttle", value: "RATE[@HH:MM-HH:MM,…]", help: "limit the recovery's bandwidth, e.g. 50M or 10M@08:00-18:00"),
            OptionSpec(name: "notify", value: "ADDRESS", help: "email the outcome to ADDRESS (smtp.* settings)"),
        ],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let source = try service.knownDataSource(invocation.positionals[0])
        let arguments = invocation.arguments
        let targets = ["original", "alternate", "copy-disks", "raw", "to-folder"].filter { arguments.has($0) }
        guard targets.count == 1 else {
            throw HostError(.usage, "choose exactly one target: --original, --alternate DIR, --copy-disks DIR, --raw DIR or --to-folder DIR (see `dpm recover --help`)")
        }
        guard targets[0] == "to-folder" || arguments.all("item").isEmpty else { throw HostError(.usage, "--item goes with --to-folder DIR") }
        let (point, staging) = try RecoverySource.resolve(invocation, service: service, source: source)
        let bar = ProgressBar("recover \(source.name)", output: invocation.output)
        let recovery = RecoveryOptions(throttle: try arguments.value("throttle").map { try Throttle($0) }, notify: arguments.value("notify"))
        if targets[0] == "to-folder" {
            guard !arguments.all("item").isEmpty else { throw HostError(.usage, "--to-folder needs at least one --item PATH (see `dpm browse`)") }
            let folder = arguments.value("to-folder")!
            let directory = folder.hasPrefix("/") ? folder : FileManager.default.currentDirectoryPath + "/" + folder
            let reply = try RecoverySource.annotate(try service.extract(point, items: arguments.all("item"), directory: directory, options: recovery,
                                                                         onProgress: bar.callback), staging)
            bar.finish()
            if invocation.json { try invocation.output.emit(reply) } else {
                invocation.output.line("recovered \(Int(reply["files"]?.numberValue ?? 0)) files and \(Int(reply["directories"]?.numberValue ?? 0)) folders "
                    + "(\(ByteFormat.string(UInt64(reply["bytes"]?.numberValue ?? 0)))) into \(directory); "
                    + "\(Int(reply["chunks_read"]?.numberValue ?? 0)) of \(Int(reply["chunks_total"]?.numberValue ?? 0)) chunks read")
                for item in reply["renamed"]?.arrayValue ?? [] {
                    invocation.output.line("  renamed \(item["from"]?.stringValue ?? "") -> \(item["to"]?.stringValue ?? "") (unsafe name)")
                }
                for item in reply["skipped"]?.arrayValue ?? [] {
                    invocation.output.line("  skipped \(item["path"]?.stringValue ?? ""): \(item["reason"]?.stringValue ?? "")")
                }
            }
            return 0
        }
        if targets[0] != "raw" {
            let target = RestoreTarget(rawValue: targets[0]) ?? .original
            let directory = arguments.value(targets[0]).map { $0.hasPrefix("/") || $0.hasPrefix("//") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 }
            let options: JSONValue? = arguments.value("host").map { .object(["host": .string($0)]) }
            let request = RestoreRequest(datasource: source.id, target: target, directory: directory, format: arguments.value("format"), options: options)
            let reply = try RecoverySource.annotate(try service.restore(point, request: request, options: recovery, onProgress: bar.callback), staging)
            bar.finish()
            if invocation.json { try invocation.output.emit(reply) } else {
                for file in reply["written"]?.arrayValue ?? [] {
                    invocation.output.line("wrote \(file["path"]?.stringValue ?? "?") (\(file["format"]?.stringValue ?? "?"))")
                }
                invocation.output.line("recovered \(source.name) from \(point.id) (\(target.rawValue)), \(Int(reply["chunks_read"]?.numberValue ?? 0)) chunks read")
            }
            return 0
        }
        let directory = arguments.value("raw")!
        let report = try service.restoreRaw(point, directory: directory, options: recovery, onProgress: bar.callback)
        bar.finish()
        if invocation.json { try invocation.output.emit(RecoverySource.annotate(try JSONCoding.toJSON(report), staging)) } else {
            for file in report.files { invocation.output.line("wrote \(file)") }
            invocation.output.line("recovered \(source.name) from \(point.id): \(ByteFormat.string(report.bytes)), \(report.chunksRead) chunks read")
        }
        return 0
    }
}
