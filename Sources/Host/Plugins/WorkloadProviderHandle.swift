import DPMPluginABI
import Foundation
import PluginAPI

/// The host's Swift view of a workload provider's op table. Every method calls through the
/// C ABI and turns a failed status into a HostError naming the provider.
public final class WorkloadProviderHandle: @unchecked Sendable {
    public let provider: LoadedProvider
    let newContext: () throws -> CallContext
    var ops: dpm_workload_ops { provider.workloadOps!.pointee }

    init(provider: LoadedProvider, context: @escaping () throws -> CallContext) {
        self.provider = provider
        self.newContext = context
    }

    public var id: String { provider.info.id }

    /// A call context for this provider; configure its progress or recovery point, then pass it.
    public func context() throws -> CallContext { try newContext() }

    public func enumerate(_ context: CallContext? = nil) throws -> [DataSourceDescription] {
        guard let enumerate = ops.enumerate else { throw unsupported("enumerate") }
        let context = try context ?? newContext()
        let reply = try provider.invokeCollecting("enumerate") { buffer, err, size in
            enumerate(provider.handle, context.handle, buffer, err, size)
        }
        return try provider.decodeReply([DataSourceDescription].self, reply, "enumerate")
    }

    public func prepareSnapshot(_ request: SnapshotRequest, context: CallContext) throws -> SnapshotHandle {
        guard let prepare = ops.snapshot_prepare else { throw unsupported("backup") }
        let json = try provider.encodeRequest(request)
        var handle: UnsafeMutableRawPointer?
        let reply = try provider.invokeCollecting("snapshot_prepare") { buffer, err, size in
            prepare(provider.handle, context.handle, json, buffer, &handle, err, size)
        }
        let snapshot = SnapshotHandle(owner: self, handle: handle, context: context)
        do {
            snapshot.description = try provider.decodeReply(SnapshotDescription.self, reply, "snapshot_prepare")
        } catch {
            _ = try? snapshot.finish(committed: false)
            throw error
        }
        return snapshot
    }

    public func restore(_ request: RestoreRequest, context: CallContext) throws -> JSONValue {
        try jsonCall("restore", ops.restore, request, context)
    }

    public func browse(_ request: BrowseRequest, context: CallContext) throws -> BrowseReply {
        let value: JSONValue = try jsonCall("browse", ops.browse, request, context)
        return try provider.decodeReply(BrowseReply.self, try JSONCoding.encode(value), "browse")
    }

    public func extract(_ request: ExtractRequest, context: CallContext) throws -> JSONValue {
        try jsonCall("extract", ops.extract, request, context)
    }

    public func command(_ verb: String, _ args: JSONValue? = nil, context: CallContext? = nil) throws -> JSONValue {
        try jsonCall("command", ops.command, CommandRequest(verb: verb, args: args), try context ?? newContext())
    }

    typealias JSONFunction = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                             UnsafeMutablePointer<CChar>?, Int) -> Int32

    func jsonCall<Request: Encodable>(_ operation: String, _ function: JSONFunction?, _ request: Request,
                                      _ context: CallContext) throws -> JSONValue {
        guard let function else { throw unsupported(operation) }
        let json = try provider.encodeRequest(request)
        let reply = try provider.invokeCollecting(operation) { buffer, err, size in
            function(provider.handle, context.handle, json, buffer, err, size)
        }
        return try provider.decodeReply(JSONValue.self, reply, operation)
    }

    func unsupported(_ operation: String) -> HostError {
        HostError(.unsupported, "provider \(id) does not offer \(operation)")
    }
}

/// A prepared snapshot of one data source. `finish` must be called exactly once; the
/// deinitialiser finishes an abandoned snapshot as not committed, so a provider always
/// gets to thaw or resume its VM.
public final class SnapshotHandle: @unchecked Sendable {
    let owner: WorkloadProviderHandle
    var handle: UnsafeMutableRawPointer?
    public let context: CallContext
    public internal(set) var description = SnapshotDescription(datasource: "", consistency: .crash, reason: "", pauseMs: 0, streams: [])
    private let lock = NSLock()

    init(owner: WorkloadProviderHandle, handle: UnsafeMutableRawPointer?, context: CallContext) {
        self.owner = owner
        self.handle = handle
        self.context = context
    }

    deinit {
        if handle != nil { _ = try? finish(committed: false) }
    }

    var provider: LoadedProvider { owner.provider }

    public func extents(stream: Int) throws -> [Extent] {
        guard let function = owner.ops.snapshot_extents else { throw owner.unsupported("snapshot_extents") }
        let reply = try provider.invokeCollecting("snapshot_extents") { buffer, err, size in
            function(provider.handle, handle, context.handle, UInt32(stream), buffer, err, size)
        }
        return try unpack(reply, "snapshot_extents")
    }

    /// The changed ranges since `token`, or nil when the provider cannot vouch for them.
    public func changes(stream: Int, since token: String) throws -> [Extent]? {
        guard let function = owner.ops.snapshot_changes else { return nil }
        do {
            let reply = try provider.invokeCollecting("snapshot_changes") { buffer, err, size in
                function(provider.handle, handle, context.handle, UInt32(stream), token, buffer, err, size)
            }
            return try unpack(reply, "snapshot_changes")
        } catch let error as HostError where error.code == .notFound {
            return nil
        }
    }

    /// Reads exactly `buffer.count` bytes. Safe to call from several threads at once only if
    /// the caller serialises; the engine reads from one thread per snapshot.
    public func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let function = owner.ops.snapshot_read else { throw owner.unsupported("snapshot_read") }
        try provider.invoke("snapshot_read") { err, size in
            function(provider.handle, handle, UInt32(stream), offset, buffer.baseAddress, buffer.count, err, size)
        }
    }

    public func finish(committed: Bool) throws -> SnapshotFinish {
        lock.lock()
        let current = handle
        handle = nil
        lock.unlock()
        guard let current else { throw HostError(.internalError, "snapshot of \(description.datasource) was already finished") }
        guard let function = owner.ops.snapshot_finish else { throw owner.unsupported("snapshot_finish") }
        let reply = try provider.invokeCollecting("snapshot_finish") { buffer, err, size in
            function(provider.handle, current, context.handle, committed ? 1 : 0, buffer, err, size)
        }
        return try provider.decodeReply(SnapshotFinish.self, reply, "snapshot_finish")
    }

    func unpack(_ data: Data, _ operation: String) throws -> [Extent] {
        do {
            return try Extent.unpack([UInt8](data))
        } catch {
            throw HostError(.corrupt, "\(provider.info.id): \(operation) returned a malformed extent list", cause: error)
        }
    }
}
