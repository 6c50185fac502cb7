import DPMPluginABI
import Foundation

/// The C functions of dpm_workload_ops, forwarding to a `WorkloadProvider`.
///
/// `provider` pointers are unretained references to objects kept alive by
/// `PluginRuntime.providers`; snapshot handles are retained boxes released by finish.
enum WorkloadThunks {
    static func fill(_ ops: UnsafeMutablePointer<dpm_workload_ops>) {
        ops.pointee.size = UInt32(min(Int(ops.pointee.size), MemoryLayout<dpm_workload_ops>.size))
        ops.pointee.abi_version = DPMABI.version
        ops.pointee.enumerate = enumerate
        ops.pointee.snapshot_prepare = snapshotPrepare
        ops.pointee.snapshot_extents = snapshotExtents
        ops.pointee.snapshot_changes = snapshotChanges
        ops.pointee.snapshot_read = snapshotRead
        ops.pointee.snapshot_finish = snapshotFinish
        ops.pointee.restore = restore
        ops.pointee.browse = browse
        ops.pointee.extract = extract
        ops.pointee.command = command
    }

    static func workload(_ pointer: UnsafeMutableRawPointer?) throws -> WorkloadProvider {
        guard let pointer,
              let provider = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? WorkloadProvider else {
            throw PluginError(.invalid, "the provider handle is not a workload provider of this plugin")
        }
        return provider
    }

    static func snapshot(_ pointer: UnsafeMutableRawPointer?) throws -> WorkloadSnapshot {
        guard let pointer,
              let snapshot = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? WorkloadSnapshot else {
            throw PluginError(.invalid, "the snapshot handle is not valid")
        }
        return snapshot
    }

    static func string(_ text: UnsafePointer<CChar>?) -> String {
        text.map { String(cString: $0) } ?? ""
    }

    static func requireStream(_ snapshot: WorkloadSnapshot, _ stream: UInt32) throws -> Int {
        guard Int(stream) < snapshot.description.streams.count else {
            throw PluginError(.invalid, "stream \(stream) does not exist; the snapshot has \(snapshot.description.streams.count)")
        }
        return Int(stream)
    }

    static let enumerate: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, OpaquePointer?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, out, err, errSize in
        guarded(err, errSize) {
            let sources = try workload(provider).enumerate(call: try hostCall(call))
            try HostBuffer.appendJSON(out, sources)
        }
    }

    static let snapshotPrepare: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                                UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, handle, err, errSize in
        guarded(err, errSize) {
            guard let handle else { throw PluginError(.invalid, "snapshot_prepare needs a handle pointer") }
            let request = try JSONCoding.decodeRequest(SnapshotRequest.self, string(request), what: "snapshot_prepare")
            let snapshot = try workload(provider).prepareSnapshot(request, call: try hostCall(call))
            do {
                try HostBuffer.appendJSON(out, snapshot.description)
            } catch {
                _ = try? snapshot.finish(committed: false, call: try hostCall(call))
                throw error
            }
            handle.pointee = Unmanaged.passRetained(snapshot as AnyObject).toOpaque()
        }
    }

    static let snapshotExtents: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, OpaquePointer?, UInt32, OpaquePointer?,
                                                UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, call, stream, out, err, errSize in
        guarded(err, errSize) {
            let snapshot = try snapshot(handle)
            let extents = try snapshot.extents(stream: try requireStream(snapshot, stream), call: try hostCall(call))
            try HostBuffer.append(out, Extent.pack(extents))
        }
    }

    static let snapshotChanges: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, OpaquePointer?, UInt32, UnsafePointer<CChar>?,
                                                OpaquePointer?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, call, stream, token, out, err, errSize in
        guarded(err, errSize) {
            let snapshot = try snapshot(handle)
            guard let changes = try snapshot.changes(stream: try requireStream(snapshot, stream), since: string(token),
                                                     call: try hostCall(call)) else {
                throw PluginError(.notFound, "no trustworthy change tracking since token '\(string(token))'")
            }
            try HostBuffer.append(out, Extent.pack(changes))
        }
    }

    static let snapshotRead: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UInt32, UInt64, UnsafeMutableRawPointer?, Int,
                                             UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, stream, offset, dst, length, err, errSize in
        guarded(err, errSize) {
            let snapshot = try snapshot(handle)
            let index = try requireStream(snapshot, stream)
            guard let dst, length >= 0 else { throw PluginError(.invalid, "snapshot_read needs a destination") }
            let size = snapshot.description.streams[index].size
            guard offset <= size, UInt64(length) <= size - offset else {
                throw PluginError(.invalid, "read of \(length) bytes at \(offset) passes the end of stream \(index) (\(size) bytes)")
            }
            try snapshot.read(stream: index, offset: offset, into: UnsafeMutableRawBufferPointer(start: dst, count: length))
        }
    }

    static let snapshotFinish: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, OpaquePointer?, Int32, OpaquePointer?,
                                               UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, call, committed, out, err, errSize in
        guarded(err, errSize) {
            guard let handle else { throw PluginError(.invalid, "snapshot_finish needs a handle") }
            let box = Unmanaged<AnyObject>.fromOpaque(handle)
            defer { box.release() }
            guard let snapshot = box.takeUnretainedValue() as? WorkloadSnapshot else {
                throw PluginError(.invalid, "the snapshot handle is not valid")
            }
            let result = try snapshot.finish(committed: committed != 0, call: try hostCall(call))
            try HostBuffer.appendJSON(out, result)
        }
    }

    static let restore: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                        UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(RestoreRequest.self, string(request), what: "restore")
            try HostBuffer.appendJSON(out, try workload(provider).restore(request, call: try hostCall(call)))
        }
    }

    static let browse: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                       UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(BrowseRequest.self, string(request), what: "browse")
            try HostBuffer.appendJSON(out, try workload(provider).browse(request, call: try hostCall(call)))
        }
    }

    static let extract: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                        UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(ExtractRequest.self, string(request), what: "extract")
            try HostBuffer.appendJSON(out, try workload(provider).extract(request, call: try hostCall(call)))
        }
    }

    static let command: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                        UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(CommandRequest.self, string(request), what: "command")
            try HostBuffer.appendJSON(out, try workload(provider).command(request, call: try hostCall(call)))
        }
    }
}
