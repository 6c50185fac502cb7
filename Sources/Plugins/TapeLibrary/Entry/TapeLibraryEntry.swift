import DPMPluginABI
import PluginAPI
import TapeLibraryCore

/// The plugin's exported entry point (see dpm_plugin.h).
@_cdecl("dpm_plugin_entry")
public func dpmPluginEntry(host: UnsafePointer<dpm_host_api>?, plugin: UnsafeMutablePointer<dpm_plugin_api>?,
                           err: UnsafeMutablePointer<CChar>?, errSize: Int) -> Int32 {
    PluginExport.entry(host: host, plugin: plugin, err: err, errSize: errSize,
                       name: "TapeLibrary", version: TapeLibraryProvider.version) { [TapeLibraryProvider()] }
}
