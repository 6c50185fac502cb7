import Foundation
import PluginAPI

/// What the host knows about one provider, copied out of the plugin at load time.
public struct ProviderInfo: Codable, Sendable {
    public var id: String
    public var displayName: String
    public var version: String
    public var kind: ProviderKind
    public var capabilities: [String]
    public var capabilityBits: UInt64
    public var maxRetentionDays: Int
    /// "ready" or "planned".
    public var status: String
    public var statusMessage: String
    public var enabled: Bool
    public var plugin: String
    public var pluginVersion: String
    public var abiVersion: String
    public var path: String

    public func has(_ capability: Capabilities) -> Bool {
        Capabilities(rawValue: capabilityBits).contains(capability)
    }
}

/// A plugin file that was refused, with the reason and the fix.
public struct PluginLoadFailure: Error, Codable, Sendable, Equatable {
    public var path: String
    public var reason: String
}
