import Foundation
import Host

/// `dpm config set|get|list`: the deployment's settings in DATA/config.json.
enum ConfigCommands {
    static let all = [set, get, list]

    static let set = CommandDefinition(
        path: ["config", "set"], summary: "Set a setting (or remove it with an empty value).", arguments: "KEY VALUE",
        details: "Keys: plugin_dirs (':'-separated), PROVIDER_ID.KEY for a provider, smtp.host, smtp.port, smtp.from, gc.grace …",
        positionals: 2...2
    ) { invocation in
        try invocation.dataDirectory.create()
        var settings = try invocation.settings()
        let (key, value) = (invocation.positionals[0], invocation.positionals[1])
        try settings.set(key, value.isEmpty ? nil : value)
        if invocation.json { try invocation.output.emit([key: value]) } else { invocation.output.line("\(key) = \(value)") }
        return 0
    }

    static let get = CommandDefinition(
        path: ["config", "get"], summary: "Print one setting.", arguments: "KEY", positionals: 1...1
    ) { invocation in
        let key = invocation.positionals[0]
        guard let value = try invocation.settings()[key] else {
            throw HostError(.notFound, "setting '\(key)' is not set; set it with `dpm config set \(key) VALUE`")
        }
        if invocation.json { try invocation.output.emit([key: value]) } else { invocation.output.line(value) }
        return 0
    }

    static let list = CommandDefinition(
        path: ["config", "list"], summary: "Print every setting.", arguments: ""
    ) { invocation in
        let values = try invocation.settings().values
        if invocation.json { try invocation.output.emit(values) } else {
            for key in values.keys.sorted() { invocation.output.line("\(key) = \(values[key]!)") }
        }
        return 0
    }
}
