import DPMPluginABI
import Foundation

public enum LogLevel: Int32, Sendable {
    case debug = 0, info = 1, warning = 2, error = 3
}

/// The host's side of one provider call: logging, progress, cancellation, configuration
/// and, in restore/browse/extract calls, random-access reads of a recovery point.
///
/// Valid only until the provider call that received it returns.
public struct HostCall {
    let host: UnsafePointer<dpm_host_api>
    let call: OpaquePointer?

    init(host: UnsafePointer<dpm_host_api>, call: OpaquePointer?) {
        self.host = host
        self.call = call
    }

    public func log(_ level: LogLevel, _ message: String) {
        host.pointee.log?(call, level.rawValue, message)
    }

    /// Reports `done` out of `total` units; total 0 means unknown.
    public func progress(done: UInt64, total: UInt64) {
        host.pointee.progress?(call, done, total)
    }

    public var isCancelled: Bool {
        (host.pointee.cancelled?(call) ?? 0) != 0
    }

    /// Throws `cancelled` when the host asked to stop.
    public func checkCancelled() throws {
        if isCancelled { throw PluginError(.cancelled, "cancelled by the host") }
    }

    /// A configuration value for this provider, or nil when the host has none.
    public func config(_ key: String) -> String? {
        guard let configGet = host.pointee.config_get else { return nil }
        var capacity = 256
        while true {
            var buffer = [CChar](repeating: 0, count: capacity)
            var length = 0
            let status = configGet(call, key, &buffer, capacity, &length)
            guard status == DPM_OK else { return nil }
            if length < capacity { return String(cString: buffer) }
            capacity = length + 1
        }
    }

    /// The provider's own state directory (created by the host).
    public func stateDirectory() throws -> String {
        guard let directory = config("state_dir") else {
            throw PluginError(.internalError, "the host gave no state_dir")
        }
        return directory
    }

    // MARK: Recovery-point access

    public func recoveryPointManifest() throws -> RecoveryPointManifest {
        guard let manifest = host.pointee.rp_manifest else {
            throw PluginError(.abiMismatch, "the host offers no recovery-point access")
        }
        var capacity = 4096
        while true {
            var out = [CChar](repeating: 0, count: capacity)
            var length = 0
            var err = [CChar](repeating: 0, count: 512)
            let status = manifest(call, &out, capacity, &length, &err, err.count)
            try PluginError.check(status, err)
            if length >= capacity { capacity = length + 1; continue }
            do {
                return try JSONCoding.decode(RecoveryPointManifest.self, from: Data(String(cString: out).utf8))
            } catch {
                throw PluginError(.corrupt, "the recovery-point manifest from the host is not valid: \(error)")
            }
        }
    }

    /// Reads exactly `buffer.count` bytes of a stream of the recovery point.
    public func readRecoveryPoint(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let read = host.pointee.rp_read else {
            throw PluginError(.abiMismatch, "the host offers no recovery-point reads")
        }
        var err = [CChar](repeating: 0, count: 512)
        let status = read(call, UInt32(stream), offset, buffer.baseAddress, buffer.count, &err, err.count)
        try PluginError.check(status, err)
    }

    /// The extents of a stream of the recovery point that hold data.
    public func recoveryPointMap(stream: Int) throws -> [Extent] {
        guard let map = host.pointee.rp_map else {
            throw PluginError(.abiMismatch, "the host offers no recovery-point maps")
        }
        var capacity = 1024
        while true {
            var records = [dpm_extent](repeating: dpm_extent(), count: capacity)
            var count = 0
            var err = [CChar](repeating: 0, count: 512)
            let status = map(call, UInt32(stream), &records, capacity, &count, &err, err.count)
            try PluginError.check(status, err)
            if count > capacity { capacity = count; continue }
            return try records[0..<count].map { record in
                guard let flag = Extent.Flag(rawValue: record.flags) else {
                    throw PluginError(.corrupt, "recovery-point map has unknown extent flag \(record.flags)")
                }
                return Extent(offset: record.offset, length: record.length, flag: flag)
            }
        }
    }
}

/// Appends to host-owned `dpm_buffer`s.
enum HostBuffer {
    static func append(_ buffer: OpaquePointer?, _ bytes: [UInt8]) throws {
        guard let append = PluginRuntime.host?.pointee.buffer_append else {
            throw PluginError(.abiMismatch, "the host offers no buffer_append")
        }
        let status = bytes.withUnsafeBytes { append(buffer, $0.baseAddress, $0.count) }
        guard status == DPM_OK else { throw PluginError(.internalError, "the host could not grow a buffer") }
    }

    static func append(_ buffer: OpaquePointer?, _ bytes: UnsafeRawBufferPointer) throws {
        guard let append = PluginRuntime.host?.pointee.buffer_append else {
            throw PluginError(.abiMismatch, "the host offers no buffer_append")
        }
        guard append(buffer, bytes.baseAddress, bytes.count) == DPM_OK else { throw PluginError(.internalError, "the host could not grow a buffer") }
    }

    static func appendJSON<T: Encodable>(_ buffer: OpaquePointer?, _ value: T) throws {
        try append(buffer, [UInt8](try JSONCoding.encode(value)))
    }
}
