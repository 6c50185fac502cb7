import DPMPluginABI
import Foundation

/// The ABI 1.1 object calls of dpm_tier_ops, forwarding to an `ObjectTierProvider`.
/// Filled only for providers that conform, and only when the host's table has room.
enum ObjectThunks {
    static func fill(_ ops: UnsafeMutablePointer<dpm_tier_ops>) {
        ops.pointee.object_put = put
        ops.pointee.object_get = get
        ops.pointee.object_list = list
        ops.pointee.object_delete = delete
        ops.pointee.object_retain = retain
    }

    static func provider(_ pointer: UnsafeMutableRawPointer?) throws -> ObjectTierProvider {
        guard let object = try TierThunks.tier(pointer) as? ObjectTierProvider else {
            throw PluginError(.unsupported, "this tier provider keeps no objects")
        }
        return object
    }

    static func objectKey(_ pointer: UnsafePointer<CChar>?) throws -> String {
        let key = WorkloadThunks.string(pointer)
        guard !key.isEmpty, key.utf8.count <= 1024, !key.hasPrefix("/") else {
            throw PluginError(.invalid, "object key '\(key.prefix(80))' must be 1-1024 bytes without a leading '/'")
        }
        return key
    }

    static func lock(_ pointer: UnsafePointer<CChar>?, what: String) throws -> ObjectLock? {
        let text = WorkloadThunks.string(pointer)
        return text.isEmpty ? nil : try JSONCoding.decodeRequest(ObjectLock.self, text, what: what)
    }

    static let put: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int,
                                    UnsafePointer<CChar>?, OpaquePointer?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        handle, call, key, data, length, options, out, err, errSize in
        guarded(err, errSize) {
            let reply = try provider(handle).putObject(try objectKey(key), UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length),
                                                       lock: try lock(options, what: "object_put"), call: try hostCall(call))
            try HostBuffer.appendJSON(out, reply)
        }
    }

    static let get: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UInt64, UInt64, OpaquePointer?,
                                    UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        handle, call, key, offset, length, out, err, errSize in
        guarded(err, errSize) {
            try provider(handle).getObject(try objectKey(key), offset: offset, length: length, call: try hostCall(call)) { bytes in
                try HostBuffer.append(out, bytes)
            }
        }
    }

    static let list: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                     UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        handle, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(ObjectListRequest.self, WorkloadThunks.string(request), what: "object_list")
            try HostBuffer.appendJSON(out, try provider(handle).listObjects(request, call: try hostCall(call)))
        }
    }

    static let delete: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
                                       UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        handle, call, key, version, bypass, err, errSize in
        guarded(err, errSize) {
            let version = WorkloadThunks.string(version)
            try provider(handle).deleteObject(try objectKey(key), versionId: version.isEmpty ? nil : version, bypassGovernance: bypass != 0,
                                              call: try hostCall(call))
        }
    }

    static let retain: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                       UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        handle, call, key, version, options, err, errSize in
        guarded(err, errSize) {
            guard let lock = try lock(options, what: "object_retain") else { throw PluginError(.invalid, "object_retain needs retain_until and lock_mode") }
            let version = WorkloadThunks.string(version)
            try provider(handle).retainObject(try objectKey(key), versionId: version.isEmpty ? nil : version, lock: lock, call: try hostCall(call))
        }
    }
}
