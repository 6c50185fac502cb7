import DPMPluginABI
import Foundation
import PluginAPI

/// One provider of a loaded plugin: its description and its op table (allocated by the
/// host, filled by the plugin, kept for the life of the process).
public final class LoadedProvider: @unchecked Sendable {
    /// The description as loaded; `enabled` is decided per deployment by ProviderRegistry.
    public let info: ProviderInfo
    let handle: UnsafeMutableRawPointer?
    let workloadOps: UnsafeMutablePointer<dpm_workload_ops>?
    let tierOps: UnsafeMutablePointer<dpm_tier_ops>?

    init(info: ProviderInfo, handle: UnsafeMutableRawPointer?, workloadOps: UnsafeMutablePointer<dpm_workload_ops>?,
         tierOps: UnsafeMutablePointer<dpm_tier_ops>?) {
        self.info = info
        self.handle = handle
        self.workloadOps = workloadOps
        self.tierOps = tierOps
    }

    /// Refuses a call to a provider that is disabled or planned, with what to do.
    func requireUsable(enabled: Bool) throws {
        guard enabled else {
            throw HostError(.invalid, "provider \(info.id) is disabled in this deployment; enable it with `dpm plugins enable \(info.id)`")
        }
        guard info.status == "ready" else {
            throw HostError(.planned, "provider \(info.id) is planned: \(info.statusMessage)")
        }
    }

    /// Calls a provider function with a fresh error buffer; a failure becomes a HostError
    /// that names the provider.
    func invoke(_ operation: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        var err = [CChar](repeating: 0, count: 4096)
        let status = err.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        guard status != Int32(DPM_OK) else { return }
        err[err.count - 1] = 0
        var message = String(cString: err)
        if message.isEmpty { message = "\(operation) failed with status \(PluginError.statusName(status)) and no message" }
        throw HostError(HostError.code(forStatus: status), "\(info.id): \(message)")
    }

    /// Calls a provider function that appends to a buffer, and returns the bytes.
    func invokeCollecting(_ operation: String, _ body: (OpaquePointer, UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> Data {
        let buffer = ABIBuffer()
        try withExtendedLifetime(buffer) {
            try invoke(operation) { err, size in body(buffer.handle, err, size) }
        }
        return buffer.data
    }

    /// Decodes a provider's JSON reply, refusing malformed replies with a clear message.
    func decodeReply<T: Decodable>(_ type: T.Type, _ data: Data, _ operation: String) throws -> T {
        do {
            return try JSONCoding.decode(type, from: data)
        } catch {
            let excerpt = String(decoding: data.prefix(200), as: UTF8.self)
            throw HostError(.corrupt, "\(info.id): \(operation) returned a reply dpm cannot read: \(excerpt)", cause: error)
        }
    }

    func encodeRequest<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONCoding.encode(value), as: UTF8.self)
    }
}
