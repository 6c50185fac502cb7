import DPMPluginABI
import Foundation
import Glibc
import PluginAPI

/// Finds and loads plugin libraries, refusing bad ones without stopping the rest.
///
/// Contract:
/// - Directories are searched in order: beside the `dpm` binary, then each folder of
///   `DPM_PLUGIN_PATH`, then the `plugin_dirs` setting. Every `*.so` file in them is tried.
/// - A library is opened with `RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE` and never closed:
///   unmapping a Swift library crashes the Swift runtime later. To upgrade a plugin,
///   restart the process.
/// - Each file is loaded at most once per process; loading again returns the first result.
/// - Every string a plugin hands over is copied.
/// - A refusal names the file, the reason and the fix; the other plugins still load.
public enum PluginLoader {
    public struct Report: Sendable {
        public var providers: [LoadedProvider]
        public var failures: [PluginLoadFailure]
    }

    /// The host's own Swift toolchain stamp, which Swift plugins must match.
    public static var toolchainStamp: String { SwiftToolchain.stamp }

    nonisolated(unsafe) private static var cache: [String: Result<[LoadedProvider], PluginLoadFailure>] = [:]
    private static let lock = NSLock()

    /// The plugin directories, in search order, without duplicates.
    public static func searchDirectories(settings: Settings?, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var directories: [String] = []
        if let executable = executableDirectory() { directories.append(executable) }
        if let path = environment["DPM_PLUGIN_PATH"] {
            directories += path.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        directories += settings?.pluginDirectories ?? []
        var seen = Set<String>()
        return directories.map { URL(fileURLWithPath: $0).standardizedFileURL.path }.filter { seen.insert($0).inserted }
    }

    static func executableDirectory() -> String? {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        return (path as NSString).deletingLastPathComponent
    }

    /// Loads every plugin in `directories`. Duplicate provider ids are refused in load order.
    public static func load(directories: [String]) -> Report {
        var report = Report(providers: [], failures: [])
        var owners: [String: String] = [:]
        for directory in directories {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for name in names.sorted() where name.hasSuffix(".so") {
                let path = directory + "/" + name
                switch loadFile(path) {
                case .failure(let failure):
                    report.failures.append(failure)
                case .success(let providers):
                    if let clash = providers.first(where: { owners[$0.info.id] != nil }) {
                        report.failures.append(PluginLoadFailure(
                            path: path,
                            reason: "provider id '\(clash.info.id)' is already registered by \(owners[clash.info.id]!); "
                                + "remove one of the two plugins from the plugin path"))
                        continue
                    }
                    for provider in providers { owners[provider.info.id] = path }
                    report.providers += providers
                }
            }
        }
        return report
    }

    /// Loads one file (once per process) and returns its providers or the refusal.
    public static func loadFile(_ path: String) -> Result<[LoadedProvider], PluginLoadFailure> {
        let key = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[key] { return cached }
        let result: Result<[LoadedProvider], PluginLoadFailure>
        do {
            result = .success(try open(path))
        } catch let error as HostError {
            result = .failure(PluginLoadFailure(path: path, reason: error.message))
        } catch {
            result = .failure(PluginLoadFailure(path: path, reason: String(describing: error)))
        }
        cache[key] = result
        return result
    }

    private static func open(_ path: String) throws -> [LoadedProvider] {
        guard let library = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw HostError(.invalid, "not a loadable shared object (\(reason)); remove it from the plugin path or rebuild it with `cc -shared -fPIC`")
        }
        guard let symbol = dlsym(library, DPM_PLUGIN_ENTRY_SYMBOL) else {
            throw HostError(.invalid, "no entry symbol `dpm_plugin_entry`; declare it with DPM_PLUGIN_ENTRY(...) from dpm_plugin.h "
                + "(or @_cdecl(\"dpm_plugin_entry\") in Swift), or remove the file from the plugin path")
        }
        typealias Entry = @convention(c) (UnsafePointer<dpm_host_api>?, UnsafeMutablePointer<dpm_plugin_api>?,
                                          UnsafeMutablePointer<CChar>?, Int) -> Int32
        let entry = unsafeBitCast(symbol, to: Entry.self)

        // The host allocates the plugin's table and keeps it for the life of the process.
        let table = UnsafeMutablePointer<dpm_plugin_api>.allocate(capacity: 1)
        table.initialize(to: dpm_plugin_api())
        table.pointee.size = UInt32(MemoryLayout<dpm_plugin_api>.size)
        var err = [CChar](repeating: 0, count: 4096)
        let status = entry(HostAPITable.pointer, table, &err, err.count)
        err[err.count - 1] = 0
        guard status == Int32(DPM_OK) else {
            let message = String(cString: err)
            throw HostError(.invalid, "dpm_plugin_entry failed with status \(PluginError.statusName(status))"
                + (message.isEmpty ? "" : ": \(message)") + "; fix the plugin's configuration or remove it from the plugin path")
        }
        let plugin = table.pointee
        guard plugin.abi_version >> 16 == DPMABI.version >> 16 else {
            throw HostError(.abiMismatch, "built for dpm ABI \(DPMABI.string(plugin.abi_version)), but this dpm speaks ABI "
                + "\(DPMABI.versionString); rebuild the plugin against this dpm's dpm_plugin.h")
        }
        guard plugin.size >= DPMABI.pluginAPIMinSize, plugin.size <= UInt32(MemoryLayout<dpm_plugin_api>.size) else {
            throw HostError(.abiMismatch, "its plugin table is \(plugin.size) bytes, but ABI \(DPMABI.versionString) needs at least "
                + "\(DPMABI.pluginAPIMinSize); rebuild the plugin against this dpm's dpm_plugin.h")
        }
        if let stamp = plugin.swift_toolchain.map({ String(cString: $0) }), stamp != toolchainStamp {
            throw HostError(.abiMismatch, "built with Swift toolchain '\(stamp)', but this dpm runs '\(toolchainStamp)'; "
                + "rebuild the plugin with the same toolchain as dpm")
        }
        let pluginName = plugin.plugin_name.map { String(cString: $0) } ?? (path as NSString).lastPathComponent
        let pluginVersion = plugin.plugin_version.map { String(cString: $0) } ?? "unknown"
        guard let describe = plugin.describe else {
            throw HostError(.abiMismatch, "its plugin table has no describe function; rebuild the plugin against dpm_plugin.h")
        }
        guard plugin.provider_count <= 64 else {
            throw HostError(.invalid, "it claims \(plugin.provider_count) providers; a plugin offers at most 64")
        }
        var providers: [LoadedProvider] = []
        var ids = Set<String>()
        for index in 0..<plugin.provider_count {
            let provider = try describeProvider(index: index, describe: describe, plugin: plugin, name: pluginName,
                                                version: pluginVersion, path: path)
            guard ids.insert(provider.info.id).inserted else {
                throw HostError(.invalid, "it registers provider id '\(provider.info.id)' twice; give each provider its own id")
            }
            providers.append(provider)
        }
        return providers
    }

    private static func describeProvider(index: UInt32,
                                         describe: @convention(c) (UInt32, UnsafeMutablePointer<dpm_provider_info>?, UnsafeMutablePointer<CChar>?, Int) -> Int32,
                                         plugin: dpm_plugin_api, name: String, version: String, path: String) throws -> LoadedProvider {
        var info = dpm_provider_info()
        info.size = UInt32(MemoryLayout<dpm_provider_info>.size)
        var err = [CChar](repeating: 0, count: 4096)
        let status = describe(index, &info, &err, err.count)
        err[err.count - 1] = 0
        guard status == Int32(DPM_OK) else {
            throw HostError(.invalid, "describing provider \(index) failed (\(PluginError.statusName(status))): \(String(cString: err))")
        }
        guard info.size >= DPMABI.providerInfoMinSize else {
            throw HostError(.abiMismatch, "provider \(index) filled \(info.size) bytes of its description, fewer than ABI 1.0 needs; rebuild the plugin")
        }
        guard let idPointer = info.id else {
            throw HostError(.invalid, "provider \(index) has no id; set dpm_provider_info.id")
        }
        let id = String(cString: idPointer)
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
            throw HostError(.invalid, "provider id '\(id)' must be 1-64 characters of a-z, 0-9 and '-'")
        }
        let kind: ProviderKind
        switch Int(info.kind) {
        case Int(DPM_KIND_WORKLOAD): kind = .workload
        case Int(DPM_KIND_TIER): kind = .tier
        default: throw HostError(.invalid, "provider '\(id)' has unknown kind \(info.kind)")
        }
        var workloadOps: UnsafeMutablePointer<dpm_workload_ops>?
        var tierOps: UnsafeMutablePointer<dpm_tier_ops>?
        if kind == .workload {
            guard let fill = plugin.workload_ops else { throw HostError(.abiMismatch, "provider '\(id)' is a workload provider but the plugin has no workload_ops") }
            let ops = UnsafeMutablePointer<dpm_workload_ops>.allocate(capacity: 1)
            ops.initialize(to: dpm_workload_ops())
            ops.pointee.size = UInt32(MemoryLayout<dpm_workload_ops>.size)
            let opsStatus = fill(index, ops, &err, err.count)
            guard opsStatus == Int32(DPM_OK) else {
                throw HostError(.invalid, "provider '\(id)': workload_ops failed (\(PluginError.statusName(opsStatus))): \(String(cString: err))")
            }
            guard ops.pointee.size >= DPMABI.workloadOpsMinSize else {
                throw HostError(.abiMismatch, "provider '\(id)' filled \(ops.pointee.size) bytes of its workload table, fewer than ABI 1.0 needs; rebuild the plugin")
            }
            workloadOps = ops
        } else {
            guard let fill = plugin.tier_ops else { throw HostError(.abiMismatch, "provider '\(id)' is a tier provider but the plugin has no tier_ops") }
            let ops = UnsafeMutablePointer<dpm_tier_ops>.allocate(capacity: 1)
            ops.initialize(to: dpm_tier_ops())
            ops.pointee.size = UInt32(MemoryLayout<dpm_tier_ops>.size)
            let opsStatus = fill(index, ops, &err, err.count)
            guard opsStatus == Int32(DPM_OK) else {
                throw HostError(.invalid, "provider '\(id)': tier_ops failed (\(PluginError.statusName(opsStatus))): \(String(cString: err))")
            }
            guard ops.pointee.size >= DPMABI.tierOpsMinSize else {
                throw HostError(.abiMismatch, "provider '\(id)' filled \(ops.pointee.size) bytes of its tier table, fewer than ABI 1.0 needs; rebuild the plugin")
            }
            tierOps = ops
        }
        func copy(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
        let capabilities = Capabilities(rawValue: info.capabilities)
        let providerInfo = ProviderInfo(
            id: id, displayName: copy(info.display_name), version: copy(info.version), kind: kind,
            capabilities: capabilities.names, capabilityBits: info.capabilities,
            maxRetentionDays: Int(info.max_retention_days),
            status: info.status == UInt32(DPM_PROVIDER_PLANNED) ? "planned" : "ready",
            statusMessage: copy(info.status_message), enabled: true, plugin: name, pluginVersion: version,
            abiVersion: DPMABI.string(plugin.abi_version), path: path)
        return LoadedProvider(info: providerInfo, handle: info.provider, workloadOps: workloadOps, tierOps: tierOps)
    }
}
