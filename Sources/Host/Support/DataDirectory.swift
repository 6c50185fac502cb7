import Foundation
import PluginAPI

/// The dpm data directory: catalog, chunk store, provider state, configuration and locks.
///
/// Layout:
///
///     DATA/config.json          settings (`dpm config set`), plugin directories, provider keys
///     DATA/plugins.json         providers disabled in this deployment
///     DATA/catalog.sqlite       the catalog
///     DATA/store/               the chunk store (see ChunkStore)
///     DATA/providers/ID/        each provider's own state (its `state_dir`)
///     DATA/locks/               lock files
///
/// The directory is `--data-dir`, else `$DPM_HOME`, else `/var/lib/dpm` for root and
/// `$XDG_DATA_HOME/dpm` (or `~/.local/share/dpm`) for other users.
public struct DataDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = URL(fileURLWithPath: path).standardizedFileURL.path
    }

    public static func resolve(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> DataDirectory {
        if let explicit, !explicit.isEmpty { return DataDirectory(path: explicit) }
        if let home = environment["DPM_HOME"], !home.isEmpty { return DataDirectory(path: home) }
        if getuid() == 0 { return DataDirectory(path: "/var/lib/dpm") }
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return DataDirectory(path: xdg + "/dpm") }
        return DataDirectory(path: NSHomeDirectory() + "/.local/share/dpm")
    }

    public var configFile: String { path + "/config.json" }
    public var pluginStateFile: String { path + "/plugins.json" }
    public var catalogFile: String { path + "/catalog.sqlite" }
    public var storeDirectory: String { path + "/store" }
    public var locksDirectory: String { path + "/locks" }

    public func providerStateDirectory(_ providerID: String) -> String { path + "/providers/" + providerID }

    /// The lock a backup, recovery or prune of one data source holds exclusively.
    public func dataSourceLock(_ id: String) -> String {
        locksDirectory + "/datasource-" + RecoveryPointID.directoryName(forDataSource: id) + ".lock"
    }

    /// Creates the directory (and its parents) if needed.
    public func create() throws {
        try FileSystem.makeDirectory(path)
        try FileSystem.makeDirectory(locksDirectory)
    }
}
