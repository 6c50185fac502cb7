import DPMPluginABI
import Foundation
import PluginAPI

/// The ABI 1.1 object calls of a tier provider, for incremental tiers (online).
extension TierProviderHandle {
    /// Whether the provider filled every object call (a 1.0 tier never does).
    public var keepsObjects: Bool {
        let table = ops
        return Int(table.size) >= MemoryLayout<dpm_tier_ops>.size && table.object_put != nil && table.object_get != nil
            && table.object_list != nil && table.object_delete != nil && table.object_retain != nil
    }

    func requireObjects() throws {
        guard keepsObjects else { throw unsupported("object storage (ABI 1.1 object calls)") }
    }

    @discardableResult
    public func putObject(_ key: String, _ data: UnsafeRawBufferPointer, lock: ObjectLock? = nil) throws -> ObjectPutReply {
        try requireObjects()
        let context = try newContext()
        let options = try lock.map { try provider.encodeRequest($0) }
        let reply = try provider.invokeCollecting("object_put") { buffer, err, size in
            withOptionalCString(options) { ops.object_put!(provider.handle, context.handle, key, data.baseAddress, data.count, $0, buffer, err, size) }
        }
        return try provider.decodeReply(ObjectPutReply.self, reply, "object_put")
    }

    /// The bytes [offset, offset + length) of an object (length 0: to its end).
    public func getObject(_ key: String, offset: UInt64 = 0, length: UInt64 = 0) throws -> Data {
        try requireObjects()
        let context = try newContext()
        return try provider.invokeCollecting("object_get") { buffer, err, size in
            ops.object_get!(provider.handle, context.handle, key, offset, length, buffer, err, size)
        }
    }

    /// One page of a listing; follow `continuation` for the rest.
    public func listObjects(_ request: ObjectListRequest) throws -> ObjectListReply {
        try requireObjects()
        let context = try newContext()
        let json = try provider.encodeRequest(request)
        let reply = try provider.invokeCollecting("object_list") { buffer, err, size in
            ops.object_list!(provider.handle, context.handle, json, buffer, err, size)
        }
        return try provider.decodeReply(ObjectListReply.self, reply, "object_list")
    }

    /// Every object under a prefix, page by page.
    public func listAllObjects(prefix: String, versions: Bool = false) throws -> [ObjectEntry] {
        var all: [ObjectEntry] = []
        var continuation: String?
        repeat {
            let page = try listObjects(ObjectListRequest(prefix: prefix, versions: versions, continuation: continuation))
            all += page.objects
            continuation = page.continuation
        } while continuation != nil
        return all
    }

    /// Deletes one version; throws `locked` while its lock holds.
    public func deleteObject(_ key: String, versionId: String?, bypassGovernance: Bool = false) throws {
        try requireObjects()
        let context = try newContext()
        try provider.invoke("object_delete") { err, size in
            withOptionalCString(versionId) { ops.object_delete!(provider.handle, context.handle, key, $0, bypassGovernance ? 1 : 0, err, size) }
        }
    }

    public func retainObject(_ key: String, versionId: String?, lock: ObjectLock) throws {
        try requireObjects()
        let context = try newContext()
        let options = try provider.encodeRequest(lock)
        try provider.invoke("object_retain") { err, size in
            withOptionalCString(versionId) { ops.object_retain!(provider.handle, context.handle, key, $0, options, err, size) }
        }
    }
}

/// Calls `body` with a C string, or NULL for nil.
func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
