import Foundation
import PluginAPI

/// The deployment's settings, `DATA/config.json`: a flat map of dotted keys to strings.
///
/// Keys the host reads:
/// - `plugin_dirs`: extra plugin directories, separated by `:`, searched after the ones
///   beside the binary and in `DPM_PLUGIN_PATH`;
/// - `PROVIDER_ID.KEY`: handed to that provider through `host->config_get("KEY")`;
/// - `smtp.*`, `gc.grace`, … as the features that use them document.
public struct Settings: Sendable {
    public private(set) var values: [String: String]
    let file: String

    public init(dataDirectory: DataDirectory) throws {
        file = dataDirectory.configFile
        guard FileSystem.exists(file) else {
            values = [:]
            return
        }
        do {
            values = try JSONDecoder().decode([String: String].self, from: try FileSystem.readFile(file))
        } catch let error as HostError {
            throw error
        } catch {
            throw HostError(.corrupt, "settings file \(file) is not a JSON object of strings; fix or delete it", cause: error)
        }
    }

    public subscript(key: String) -> String? { values[key] }

    public mutating func set(_ key: String, _ value: String?) throws {
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw HostError(.usage, "setting name '\(key)' may use only letters, digits, '.', '_' and '-'")
        }
        values[key] = value
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.writeAtomically(try encoder.encode(values), to: file)
    }

    public var pluginDirectories: [String] {
        (values["plugin_dirs"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    /// The settings a provider sees through `config_get`: its `ID.` keys without the prefix.
    public func providerValues(_ providerID: String) -> [String: String] {
        var result: [String: String] = [:]
        let prefix = providerID + "."
        for (key, value) in values where key.hasPrefix(prefix) {
            result[String(key.dropFirst(prefix.count))] = value
        }
        return result
    }
}
