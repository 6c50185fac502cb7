import Foundation
import Host

/// One leaf command of the CLI, such as `dpm plugins list`.
struct CommandDefinition {
    let path: [String]
    let summary: String
    /// The arguments after the command path, e.g. "ID" or "[DATASOURCE]".
    let arguments: String
    var details: String = ""
    var options: [OptionSpec] = []
    var positionals: ClosedRange<Int> = 0...0
    let run: (Invocation) throws -> Int32

    var usage: String { (["dpm"] + path + (arguments.isEmpty ? [] : [arguments])).joined(separator: " ") }

    var help: String {
        var text = "\(summary)\n\nUsage: \(usage) [options]\n"
        if !details.isEmpty { text += "\n\(details)\n" }
        text += "\nOptions:\n"
        for option in options + CommandLineParser.globalOptions {
            let name = "--\(option.name)" + (option.value.map { " \($0)" } ?? "")
            text += "  " + name.padding(toLength: max(name.count, 26), withPad: " ", startingAt: 0) + "  " + option.help + "\n"
        }
        return text
    }
}

/// What a running command gets: its arguments, the data directory and the output channel.
struct Invocation {
    let arguments: ParsedArguments
    let dataDirectory: DataDirectory
    let output: Output

    var positionals: [String] { arguments.positionals }
    var json: Bool { output.json }

    func settings() throws -> Settings { try Settings(dataDirectory: dataDirectory) }

    /// Loads the plugins for this data directory.
    func registry() throws -> ProviderRegistry {
        try ProviderRegistry(dataDirectory: dataDirectory, settings: try settings())
    }
}
