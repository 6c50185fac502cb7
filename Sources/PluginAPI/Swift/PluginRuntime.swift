import DPMPluginABI
import Foundation

/// Per-plugin state: the host's table and the providers this plugin registered.
///
/// Each plugin links its own copy of PluginAPI and is linked with -Bsymbolic, so this state
/// belongs to one plugin even when several plugins (and the host) are in one process.
enum PluginRuntime {
    nonisolated(unsafe) static var host: UnsafePointer<dpm_host_api>?
    nonisolated(unsafe) static var providers: [Provider] = []
}

/// The entry point of a plugin written in Swift. A plugin exports it in a few lines:
///
///     @_cdecl("dpm_plugin_entry")
///     public func dpmPluginEntry(host: UnsafePointer<dpm_host_api>?, plugin: UnsafeMutablePointer<dpm_plugin_api>?,
///                                err: UnsafeMutablePointer<CChar>?, errSize: Int) -> Int32 {
///         PluginExport.entry(host: host, plugin: plugin, err: err, errSize: errSize,
///                            name: "MyPlugin", version: "1.0.0") { [MyProvider()] }
///     }
///
/// Everything else (versions, sizes, strings, status codes, error buffers, handles) is done
/// here; no Swift error crosses the boundary.
public enum PluginExport {
    public static func entry(host: UnsafePointer<dpm_host_api>?, plugin: UnsafeMutablePointer<dpm_plugin_api>?,
                             err: UnsafeMutablePointer<CChar>?, errSize: Int, name: String, version: String,
                             providers makeProviders: () throws -> [Provider]) -> Int32 {
        guard let host, let plugin else {
            setError(err, errSize, "dpm_plugin_entry was called without tables")
            return Int32(DPM_ERR_INVALID)
        }
        let hostMinimum = MemoryLayout<dpm_host_api>.offset(of: \dpm_host_api.rp_map)! + MemoryLayout<UnsafeRawPointer>.size
        guard host.pointee.size >= hostMinimum,
              host.pointee.abi_version >> 16 == DPMABI.version >> 16 else {
            setError(err, errSize, "\(name) needs dpm ABI \(DPMABI.versionString); the host offers "
                     + "\(DPMABI.string(host.pointee.abi_version)) with a table of \(host.pointee.size) bytes; "
                     + "use a matching dpm or rebuild the plugin")
            return Int32(DPM_ERR_ABI)
        }
        guard plugin.pointee.size >= DPMABI.pluginAPIMinSize else {
            setError(err, errSize, "the host's plugin table is \(plugin.pointee.size) bytes, smaller than ABI 1.0's")
            return Int32(DPM_ERR_ABI)
        }
        PluginRuntime.host = host
        do {
            PluginRuntime.providers = try makeProviders()
        } catch {
            let (status, message) = statusAndMessage(of: error)
            setError(err, errSize, message)
            return status
        }
        let filled = min(Int(plugin.pointee.size), MemoryLayout<dpm_plugin_api>.size)
        plugin.pointee.size = UInt32(filled)
        plugin.pointee.abi_version = DPMABI.version
        plugin.pointee.plugin_name = UnsafePointer(strdup(name))
        plugin.pointee.plugin_version = UnsafePointer(strdup(version))
        plugin.pointee.swift_toolchain = UnsafePointer(strdup(SwiftToolchain.stamp))
        plugin.pointee.provider_count = UInt32(PluginRuntime.providers.count)
        plugin.pointee.describe = describeThunk
        plugin.pointee.workload_ops = workloadOpsThunk
        plugin.pointee.tier_ops = tierOpsThunk
        return Int32(DPM_OK)
    }
}

/// Versions and sizes of the ABI as compiled into this module.
public enum DPMABI {
    public static let version = UInt32(DPM_ABI_MAJOR << 16 | DPM_ABI_MINOR)
    public static var versionString: String { string(version) }
    public static func string(_ version: UInt32) -> String { "\(version >> 16).\(version & 0xffff)" }

    public static let pluginAPIMinSize = UInt32(MemoryLayout<dpm_plugin_api>.offset(of: \dpm_plugin_api.tier_ops)! + 8)
    public static let providerInfoMinSize = UInt32(MemoryLayout<dpm_provider_info>.offset(of: \dpm_provider_info.provider)! + 8)
    public static let workloadOpsMinSize = UInt32(MemoryLayout<dpm_workload_ops>.offset(of: \dpm_workload_ops.command)! + 8)
    public static let tierOpsMinSize = UInt32(MemoryLayout<dpm_tier_ops>.offset(of: \dpm_tier_ops.command)! + 8)
}

func setError(_ err: UnsafeMutablePointer<CChar>?, _ errSize: Int, _ message: String) {
    dpm_set_error(err, errSize, message)
}

/// Runs `body`, turning a thrown error into a status and a message in the error buffer.
func guarded(_ err: UnsafeMutablePointer<CChar>?, _ errSize: Int, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return Int32(DPM_OK)
    } catch {
        let (status, message) = statusAndMessage(of: error)
        setError(err, errSize, message)
        return status
    }
}

func provider(at index: UInt32) throws -> Provider {
    guard Int(index) < PluginRuntime.providers.count else {
        throw PluginError(.notFound, "no provider at index \(index); the plugin has \(PluginRuntime.providers.count)")
    }
    return PluginRuntime.providers[Int(index)]
}

func hostCall(_ call: OpaquePointer?) throws -> HostCall {
    guard let host = PluginRuntime.host else { throw PluginError(.internalError, "the plugin was not initialised") }
    return HostCall(host: host, call: call)
}

private let describeThunk: @convention(c) (UInt32, UnsafeMutablePointer<dpm_provider_info>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
    index, info, err, errSize in
    guarded(err, errSize) {
        guard let info, info.pointee.size >= DPMABI.providerInfoMinSize else {
            throw PluginError(.abiMismatch, "the host's provider-info struct is too small")
        }
        let provider = try provider(at: index)
        let descriptor = provider.descriptor
        info.pointee.size = UInt32(min(Int(info.pointee.size), MemoryLayout<dpm_provider_info>.size))
        info.pointee.kind = descriptor.kind.abiValue
        info.pointee.id = UnsafePointer(strdup(descriptor.id))
        info.pointee.display_name = UnsafePointer(strdup(descriptor.displayName))
        info.pointee.version = UnsafePointer(strdup(descriptor.version))
        info.pointee.capabilities = descriptor.capabilities.rawValue
        info.pointee.max_retention_days = UInt32(max(0, descriptor.maxRetentionDays))
        switch descriptor.status {
        case .ready(let message):
            info.pointee.status = UInt32(DPM_PROVIDER_READY)
            info.pointee.status_message = UnsafePointer(strdup(message))
        case .planned(let missing):
            info.pointee.status = UInt32(DPM_PROVIDER_PLANNED)
            info.pointee.status_message = UnsafePointer(strdup(missing))
        }
        info.pointee.provider = Unmanaged.passUnretained(provider as AnyObject).toOpaque()
    }
}

private let workloadOpsThunk: @convention(c) (UInt32, UnsafeMutablePointer<dpm_workload_ops>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
    index, ops, err, errSize in
    guarded(err, errSize) {
        guard try provider(at: index) is WorkloadProvider else {
            throw PluginError(.invalid, "provider \(index) is not a workload provider")
        }
        guard let ops, ops.pointee.size >= DPMABI.workloadOpsMinSize else {
            throw PluginError(.abiMismatch, "the host's workload table is too small")
        }
        WorkloadThunks.fill(ops)
    }
}

private let tierOpsThunk: @convention(c) (UInt32, UnsafeMutablePointer<dpm_tier_ops>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
    index, ops, err, errSize in
    guarded(err, errSize) {
        guard try provider(at: index) is TierProvider else {
            throw PluginError(.invalid, "provider \(index) is not a tier provider")
        }
        guard let ops, ops.pointee.size >= DPMABI.tierOpsMinSize else {
            throw PluginError(.abiMismatch, "the host's tier table is too small")
        }
        TierThunks.fill(ops)
    }
}
