import Host

/// One option a command accepts.
struct OptionSpec {
    let name: String          // without dashes, e.g. "data-dir"
    let value: String?        // the value's placeholder, or nil for a flag
    let help: String
    var repeatable = false
}

/// A parsed command line: positional arguments, option values and flags.
struct ParsedArguments {
    var positionals: [String] = []
    var values: [String: [String]] = [:]
    var flags: Set<String> = []

    func value(_ name: String) -> String? { values[name]?.last }
    func all(_ name: String) -> [String] { values[name] ?? [] }
    func has(_ name: String) -> Bool { flags.contains(name) || values[name] != nil }

    /// An integer option, refused clearly when it is not one.
    func integer(_ name: String) throws -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text) else { throw HostError(.usage, "--\(name) needs a whole number, not '\(text)'") }
        return number
    }
}

enum CommandLineParser {
    /// Options every command accepts.
    static let globalOptions = [
        OptionSpec(name: "data-dir", value: "DIR", help: "the data directory (default: $DPM_HOME, else /var/lib/dpm for root, ~/.local/share/dpm otherwise)"),
        OptionSpec(name: "json", value: nil, help: "print machine-readable JSON on standard output"),
        OptionSpec(name: "help", value: nil, help: "show help for this command"),
    ]

    /// Parses `arguments` against `options` plus the global options. `--name=value` and
    /// `--name value` both work; `--` ends option parsing.
    static func parse(_ arguments: [String], options: [OptionSpec]) throws -> ParsedArguments {
        let specs = options + globalOptions
        var parsed = ParsedArguments()
        var index = 0
        var onlyPositionals = false
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if onlyPositionals || !argument.hasPrefix("-") || argument == "-" {
                parsed.positionals.append(argument)
                continue
            }
            if argument == "--" { onlyPositionals = true; continue }
            if argument == "-h" { parsed.flags.insert("help"); continue }
            guard argument.hasPrefix("--") else {
                throw HostError(.usage, "unknown option '\(argument)'; options are spelled --name (see --help)")
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw HostError(.usage, "unknown option '--\(name)' (see --help)")
            }
            if spec.value == nil {
                guard inlineValue == nil else { throw HostError(.usage, "--\(name) takes no value") }
                parsed.flags.insert(name)
                continue
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index < arguments.count else { throw HostError(.usage, "--\(name) needs a value (\(spec.value!))") }
                value = arguments[index]
                index += 1
            }
            if !spec.repeatable, parsed.values[name] != nil {
                throw HostError(.usage, "--\(name) was given twice")
            }
            parsed.values[name, default: []].append(value)
        }
        return parsed
    }
}
