import Foundation
import Host

/// Finds the command a command line names and runs it.
enum CommandRouter {
    static var commands: [CommandDefinition] {
        PluginsCommands.all + VMCommands.all + DataSourcesCommands.all + BackupCommands.all + RecoverCommands.all
            + BrowseCommands.all
            + MaintenanceCommands.all + GroupCommands.all + ReplicaCommands.all + TapeCommands.all + OnlineCommands.all + ScheduleCommands.all + ServerCommands.all + ConfigCommands.all + [versionCommand]
    }

    static let versionCommand = CommandDefinition(
        path: ["version"], summary: "Print dpm's version, plugin ABI and Swift toolchain.", arguments: ""
    ) { invocation in
        let info = ["version": DPMVersion.current, "abi": DPMVersion.abi, "swift_toolchain": PluginLoader.toolchainStamp]
        if invocation.json { try invocation.output.emit(info) } else {
            invocation.output.line("dpm \(DPMVersion.current) (plugin ABI \(DPMVersion.abi); \(PluginLoader.toolchainStamp))")
        }
        return 0
    }

    static func run(_ arguments: [String]) -> Int32 {
        let words = arguments.prefix { !$0.hasPrefix("-") }
        // The longest command path that matches the leading words.
        let match = commands.filter { Array(words.prefix($0.path.count)) == $0.path }.max { $0.path.count < $1.path.count }
        guard let command = match else {
            return usageForGroup(Array(words), wantsHelp: arguments.contains("--help") || arguments.contains("-h") || arguments.isEmpty)
        }
        let rest = Array(arguments.dropFirst(command.path.count))
        do {
            let parsed = try CommandLineParser.parse(rest, options: command.options)
            if parsed.has("help") {
                FileHandle.standardOutput.write(Data(command.help.utf8))
                return 0
            }
            guard command.positionals.contains(parsed.positionals.count) else {
                throw HostError(.usage, "usage: \(command.usage) (see `\((["dpm"] + command.path).joined(separator: " ")) --help`)")
            }
            let invocation = Invocation(arguments: parsed,
                                        dataDirectory: DataDirectory.resolve(explicit: parsed.value("data-dir")),
                                        output: Output(json: parsed.has("json")))
            return try command.run(invocation)
        } catch let error as HostError {
            Output.error(error.description)
            return error.exitCode
        } catch {
            Output.error(String(describing: error))
            return 1
        }
    }

    /// Help for `dpm`, or for a group such as `dpm plugins`; an unknown word is a usage error.
    static func usageForGroup(_ words: [String], wantsHelp: Bool) -> Int32 {
        let members = commands.filter { Array($0.path.prefix(words.count)) == words }
        guard !members.isEmpty else {
            Output.error("unknown command '\((["dpm"] + words).joined(separator: " "))'; see `dpm --help`")
            return 2
        }
        var text = words.isEmpty
            ? "dpm \(DPMVersion.current): data protection for virtual machines and the applications inside them.\n\nCommands:\n"
            : "Commands of `dpm \(words.joined(separator: " "))`:\n"
        let width = members.map { $0.usage.count }.max() ?? 0
        for command in members {
            text += "  " + command.usage.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + command.summary + "\n"
        }
        text += "\nEvery command takes --help, --json and --data-dir DIR.\n"
        text += "Exit codes: 0 success, 1 failure, 2 usage error, 3 verification found damage.\n"
        if wantsHelp {
            FileHandle.standardOutput.write(Data(text.utf8))
            return 0
        }
        FileHandle.standardError.write(Data(text.utf8))
        return 2
    }
}

enum DPMVersion {
    static let current = "0.1.0"
    static var abi: String { PluginAPIVersion.string }
}
