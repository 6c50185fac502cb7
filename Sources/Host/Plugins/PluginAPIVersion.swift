import PluginAPI

/// The plugin ABI version this host speaks, for `dpm version`.
public enum PluginAPIVersion {
    public static var string: String { DPMABI.versionString }
}
