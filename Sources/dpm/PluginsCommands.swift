import Foundation
import Host
import PluginAPI

/// `dpm plugins list|info|enable|disable`.
enum PluginsCommands {
    static let all = [list, info, enable, disable]

    struct ListReply: Encodable {
        var providers: [ProviderInfo]
        var failures: [PluginLoadFailure]
        var searchPath: [String]
    }

    static let list = CommandDefinition(
        path: ["plugins", "list"], summary: "List the loaded providers and the plugin files that were refused.", arguments: "",
        details: "Plugins are searched beside the dpm binary, then in DPM_PLUGIN_PATH, then in the plugin_dirs setting."
    ) { invocation in
        let registry = try invocation.registry()
        let reply = ListReply(providers: registry.infos, failures: registry.failures,
                              searchPath: PluginLoader.searchDirectories(settings: registry.settings))
        if invocation.json {
            try invocation.output.emit(reply)
            return 0
        }
        invocation.output.table(["ID", "KIND", "VERSION", "STATUS", "ENABLED", "PLUGIN"], reply.providers.map {
            [$0.id, $0.kind.rawValue, $0.version, $0.status, $0.enabled ? "yes" : "no", $0.path]
        })
        for failure in reply.failures {
            invocation.output.line("refused \(failure.path): \(failure.reason)")
        }
        return 0
    }

    static let info = CommandDefinition(
        path: ["plugins", "info"], summary: "Show one provider: kind, versions, capabilities, status and file.", arguments: "ID",
        positionals: 1...1
    ) { invocation in
        let registry = try invocation.registry()
        _ = try registry.provider(invocation.positionals[0])
        guard let info = registry.infos.first(where: { $0.id == invocation.positionals[0] }) else { return 1 }
        if invocation.json {
            try invocation.output.emit(info)
            return 0
        }
        let out = invocation.output
        out.line("\(info.id): \(info.displayName)")
        out.line("  kind:          \(info.kind.rawValue)")
        out.line("  version:       \(info.version) (plugin \(info.plugin) \(info.pluginVersion), ABI \(info.abiVersion))")
        out.line("  status:        \(info.status)\(info.statusMessage.isEmpty ? "" : ": \(info.statusMessage)")")
        out.line("  enabled:       \(info.enabled ? "yes" : "no")")
        out.line("  capabilities:  \(info.capabilities.joined(separator: ", "))")
        if info.maxRetentionDays > 0 { out.line("  max retention: \(info.maxRetentionDays) days") }
        out.line("  file:          \(info.path)")
        return 0
    }

    static func toggle(_ enabled: Bool) -> CommandDefinition {
        CommandDefinition(
            path: ["plugins", enabled ? "enable" : "disable"],
            summary: enabled ? "Enable a provider in this deployment." : "Disable a provider in this deployment; nothing will invoke it.",
            arguments: "ID", details: "The choice is kept in DATA/plugins.json.", positionals: 1...1
        ) { invocation in
            let registry = try invocation.registry()
            let id = invocation.positionals[0]
            try registry.setEnabled(id, enabled)
            if invocation.json {
                try invocation.output.emit(["id": id, "enabled": enabled ? "true" : "false"])
            } else {
                invocation.output.line("\(id) \(enabled ? "enabled" : "disabled")")
            }
            return 0
        }
    }

    static let enable = toggle(true)
    static let disable = toggle(false)
}
