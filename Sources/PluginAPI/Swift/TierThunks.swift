import DPMPluginABI
import Foundation

/// The C functions of dpm_tier_ops, forwarding to a `TierProvider`. Writer and reader
/// handles are retained boxes released by store_finish and read_end.
enum TierThunks {
    static func fill(_ ops: UnsafeMutablePointer<dpm_tier_ops>) {
        ops.pointee.size = UInt32(min(Int(ops.pointee.size), MemoryLayout<dpm_tier_ops>.size))
        ops.pointee.abi_version = DPMABI.version
        ops.pointee.store_begin = storeBegin
        ops.pointee.store_write = storeWrite
        ops.pointee.store_finish = storeFinish
        ops.pointee.list = list
        ops.pointee.read_begin = readBegin
        ops.pointee.read = read
        ops.pointee.read_end = readEnd
        ops.pointee.expire = expire
        ops.pointee.command = command
        if Int(ops.pointee.size) >= MemoryLayout<dpm_tier_ops>.size {
            ObjectThunks.fill(ops)
        }
    }

    static func tier(_ pointer: UnsafeMutableRawPointer?) throws -> TierProvider {
        guard let pointer,
              let provider = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? TierProvider else {
            throw PluginError(.invalid, "the provider handle is not a tier provider of this plugin")
        }
        return provider
    }

    static func object<T>(_ pointer: UnsafeMutableRawPointer?, as type: T.Type, _ what: String) throws -> T {
        guard let pointer, let value = Unmanaged<AnyObject>.fromOpaque(pointer).takeUnretainedValue() as? T else {
            throw PluginError(.invalid, "the \(what) handle is not valid")
        }
        return value
    }

    static let storeBegin: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?,
                                           UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, handle, err, errSize in
        guarded(err, errSize) {
            guard let handle else { throw PluginError(.invalid, "store_begin needs a handle pointer") }
            let request = try JSONCoding.decodeRequest(ArchiveRequest.self, WorkloadThunks.string(request), what: "store_begin")
            let writer = try tier(provider).storeBegin(request, call: try hostCall(call))
            handle.pointee = Unmanaged.passRetained(writer as AnyObject).toOpaque()
        }
    }

    static let storeWrite: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeRawPointer?, Int,
                                           UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, data, length, err, errSize in
        guarded(err, errSize) {
            let writer = try object(handle, as: ArchiveWriter.self, "archive writer")
            try writer.write(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length))
        }
    }

    static let storeFinish: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, OpaquePointer?, Int32, OpaquePointer?,
                                            UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, call, commit, out, err, errSize in
        guarded(err, errSize) {
            guard let handle else { throw PluginError(.invalid, "store_finish needs a handle") }
            let box = Unmanaged<AnyObject>.fromOpaque(handle)
            defer { box.release() }
            guard let writer = box.takeUnretainedValue() as? ArchiveWriter else {
                throw PluginError(.invalid, "the archive writer handle is not valid")
            }
            try HostBuffer.appendJSON(out, try writer.finish(commit: commit != 0, call: try hostCall(call)))
        }
    }

    static let list: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                     UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let text = WorkloadThunks.string(request)
            let filter = text.isEmpty ? ArchiveFilter() : try JSONCoding.decodeRequest(ArchiveFilter.self, text, what: "list")
            try HostBuffer.appendJSON(out, try tier(provider).list(filter, call: try hostCall(call)))
        }
    }

    static let readBegin: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?,
                                          UnsafeMutablePointer<UnsafeMutableRawPointer?>?, OpaquePointer?,
                                          UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, handle, out, err, errSize in
        guarded(err, errSize) {
            guard let handle else { throw PluginError(.invalid, "read_begin needs a handle pointer") }
            let request = try JSONCoding.decodeRequest(ReadArchiveRequest.self, WorkloadThunks.string(request), what: "read_begin")
            let reader = try tier(provider).readBegin(request, call: try hostCall(call))
            do {
                try HostBuffer.appendJSON(out, reader.archive)
            } catch {
                reader.close()
                throw error
            }
            handle.pointee = Unmanaged.passRetained(reader as AnyObject).toOpaque()
        }
    }

    static let read: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int,
                                     UnsafeMutablePointer<Int>?, UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        _, handle, dst, length, outLength, err, errSize in
        guarded(err, errSize) {
            guard let dst, let outLength else { throw PluginError(.invalid, "read needs a destination") }
            let reader = try object(handle, as: ArchiveReader.self, "archive reader")
            outLength.pointee = try reader.read(into: UnsafeMutableRawBufferPointer(start: dst, count: length))
        }
    }

    static let readEnd: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32 = {
        _, handle in
        guard let handle else { return Int32(DPM_ERR_INVALID) }
        let box = Unmanaged<AnyObject>.fromOpaque(handle)
        (box.takeUnretainedValue() as? ArchiveReader)?.close()
        box.release()
        return Int32(DPM_OK)
    }

    static let expire: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                       UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(ExpireRequest.self, WorkloadThunks.string(request), what: "expire")
            try HostBuffer.appendJSON(out, try tier(provider).expire(request, call: try hostCall(call)))
        }
    }

    static let command: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, OpaquePointer?,
                                        UnsafeMutablePointer<CChar>?, Int) -> Int32 = {
        provider, call, request, out, err, errSize in
        guarded(err, errSize) {
            let request = try JSONCoding.decodeRequest(CommandRequest.self, WorkloadThunks.string(request), what: "command")
            try HostBuffer.appendJSON(out, try tier(provider).command(request, call: try hostCall(call)))
        }
    }
}
