import DPMPluginABI
import PluginAPI

/// The plugin's exported entry point (see dpm_plugin.h).
@_cdecl("dpm_plugin_entry")
public func dpmPluginEntry(host: UnsafePointer<dpm_host_api>?, plugin: UnsafeMutablePointer<dpm_plugin_api>?,
                           err: UnsafeMutablePointer<CChar>?, errSize: Int) -> Int32 {
    PluginExport.entry(host: host, plugin: plugin, err: err, errSize: errSize,
                       name: "HyperVHost", version: HyperVHostProvider.version) { [HyperVHostProvider()] }
}
