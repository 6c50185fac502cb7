import Foundation
import PluginAPI

/// The providers of one deployment: every loaded plugin's providers, with the
/// enabled/disabled choice persisted in `DATA/plugins.json`.
///
/// A disabled provider is never invoked: `workload(_:)` and `tier(_:)` refuse it, and
/// listing data sources skips it.
public final class ProviderRegistry {
    public let dataDirectory: DataDirectory
    public let settings: Settings
    public let providers: [LoadedProvider]
    public let failures: [PluginLoadFailure]
    public private(set) var disabled: Set<String>

    struct PluginState: Codable {
        var disabled: [String]
    }

    public init(dataDirectory: DataDirectory, settings: Settings, directories: [String]? = nil) throws {
        self.dataDirectory = dataDirectory
        self.settings = settings
        let report = PluginLoader.load(directories: directories ?? PluginLoader.searchDirectories(settings: settings))
        providers = report.providers
        failures = report.failures
        disabled = []
        if FileSystem.exists(dataDirectory.pluginStateFile) {
            do {
                let state = try JSONDecoder().decode(PluginState.self, from: try FileSystem.readFile(dataDirectory.pluginStateFile))
                disabled = Set(state.disabled)
            } catch {
                throw HostError(.corrupt, "plugin state \(dataDirectory.pluginStateFile) is damaged; fix it or delete it to enable every provider", cause: error)
            }
        }
    }

    /// Every provider's description, with `enabled` for this deployment.
    public var infos: [ProviderInfo] {
        providers.map { provider in
            var info = provider.info
            info.enabled = !disabled.contains(info.id)
            return info
        }
    }

    public func provider(_ id: String) throws -> LoadedProvider {
        guard let provider = providers.first(where: { $0.info.id == id }) else {
            let known = providers.map(\.info.id).joined(separator: ", ")
            throw HostError(.notFound, "no provider '\(id)' is loaded (loaded: \(known.isEmpty ? "none" : known)); see `dpm plugins list`")
        }
        return provider
    }

    public func isEnabled(_ id: String) -> Bool { !disabled.contains(id) }

    /// Enables or disables a provider for this deployment, durably.
    public func setEnabled(_ id: String, _ enabled: Bool) throws {
        _ = try provider(id)
        if enabled { disabled.remove(id) } else { disabled.insert(id) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try dataDirectory.create()
        try FileSystem.writeAtomically(try encoder.encode(PluginState(disabled: disabled.sorted())), to: dataDirectory.pluginStateFile)
    }

    /// A usable workload provider: loaded, enabled and ready.
    public func workload(_ id: String) throws -> WorkloadProviderHandle {
        let provider = try provider(id)
        guard provider.info.kind == .workload, provider.workloadOps != nil else {
            throw HostError(.invalid, "provider '\(id)' is a \(provider.info.kind.rawValue) provider, not a workload provider")
        }
        try provider.requireUsable(enabled: isEnabled(id))
        return WorkloadProviderHandle(provider: provider, context: makeContext(id))
    }

    /// A usable tier provider: loaded, enabled and ready.
    public func tier(_ id: String) throws -> TierProviderHandle {
        let provider = try provider(id)
        guard provider.info.kind == .tier, provider.tierOps != nil else {
            throw HostError(.invalid, "provider '\(id)' is a \(provider.info.kind.rawValue) provider, not a tier provider")
        }
        try provider.requireUsable(enabled: isEnabled(id))
        return TierProviderHandle(provider: provider, context: makeContext(id))
    }

    /// Enabled workload providers, ready or planned, in load order.
    public var enabledWorkloads: [LoadedProvider] {
        providers.filter { $0.info.kind == .workload && isEnabled($0.info.id) }
    }

    /// A fresh call context for one call into a provider, carrying its settings.
    public func makeContext(_ providerID: String) -> () throws -> CallContext {
        let dataDirectory = self.dataDirectory
        let settings = self.settings
        return {
            let state = dataDirectory.providerStateDirectory(providerID)
            try FileSystem.makeDirectory(state)
            var values = settings.providerValues(providerID)
            values["state_dir"] = state
            values["data_dir"] = dataDirectory.path
            if ProcessInfo.processInfo.environment["DPM_TEST_MODE"] == "1" { values["test_mode"] = "1" }
            return CallContext(providerID: providerID, settings: values)
        }
    }
}
