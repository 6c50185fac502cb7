import DPMPluginABI
import Foundation
import PluginAPI

/// The host's function table (`dpm_host_api`), allocated once and never freed: plugins keep
/// the pointer for the life of the process.
enum HostAPITable {
    static let pointer: UnsafeMutablePointer<dpm_host_api> = {
        let table = UnsafeMutablePointer<dpm_host_api>.allocate(capacity: 1)
        table.initialize(to: dpm_host_api())
        table.pointee.size = UInt32(MemoryLayout<dpm_host_api>.size)
        table.pointee.abi_version = DPMABI.version
        table.pointee.log = log
        table.pointee.progress = progress
        table.pointee.cancelled = cancelled
        table.pointee.config_get = configGet
        table.pointee.buffer_append = bufferAppend
        table.pointee.rp_manifest = rpManifest
        table.pointee.rp_read = rpRead
        table.pointee.rp_map = rpMap
        return table
    }()

    static func text(_ pointer: UnsafePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    /// Runs a callback body, converting a thrown error into a status and message.
    static func guarded(_ err: UnsafeMutablePointer<CChar>?, _ errSize: Int, _ body: () throws -> Void) -> Int32 {
        do {
            try body()
            return Int32(DPM_OK)
        } catch let error as PluginError {
            dpm_set_error(err, errSize, error.message)
            return error.code.rawValue
        } catch let error as HostError {
            dpm_set_error(err, errSize, error.description)
            let code: PluginError.Code
            switch error.code {
            case .notFound: code = .notFound
            case .corrupt: code = .corrupt
            case .io: code = .io
            case .cancelled: code = .cancelled
            case .invalid, .usage: code = .invalid
            case .noSpace: code = .noSpace
            default: code = .internalError
            }
            return code.rawValue
        } catch {
            dpm_set_error(err, errSize, String(describing: error))
            return Int32(DPM_ERR_INTERNAL)
        }
    }

    static func recoveryPoint(_ call: OpaquePointer?) throws -> RecoveryPointAccess {
        guard let context = CallContext.from(call) else { throw PluginError(.invalid, "no call context") }
        guard let access = context.recoveryPoint else {
            throw PluginError(.invalid, "this call works on no recovery point")
        }
        return access
    }

    static let log: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?) -> Void = { call, level, message in
        let level = LogLevel(rawValue: min(max(level, 0), 3)) ?? .info
        let context = CallContext.from(call)
        if let handler = context?.onLog {
            handler(level, text(message))
        } else {
            Log.write(level, text(message), source: context?.providerID ?? "plugin")
        }
    }

    static let progress: @convention(c) (OpaquePointer?, UInt64, UInt64) -> Void = { call, done, total in
        CallContext.from(call)?.onProgress?(done, total)
    }

    static let cancelled: @convention(c) (OpaquePointer?) -> Int32 = { call in
        (CallContext.from(call)?.isCancelled ?? false) ? 1 : 0
    }

    static let configGet: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int,
                                          UnsafeMutablePointer<Int>?) -> Int32 = { call, key, value, valueSize, valueLength in
        guard let context = CallContext.from(call), let found = context.settings[text(key)] else {
            return Int32(DPM_ERR_NOT_FOUND)
        }
        let utf8 = Array(found.utf8)
        valueLength?.pointee = utf8.count
        if let value, valueSize > 0 {
            let count = min(utf8.count, valueSize - 1)
            for index in 0..<count { value[index] = CChar(bitPattern: utf8[index]) }
            value[count] = 0
        }
        return Int32(DPM_OK)
    }

    static let bufferAppend: @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int) -> Int32 = { buffer, data, length in
        guard let target = ABIBuffer.from(buffer), length >= 0 else { return Int32(DPM_ERR_INVALID) }
        guard length > 0 else { return Int32(DPM_OK) }
        guard let data else { return Int32(DPM_ERR_INVALID) }
        target.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
        return Int32(DPM_OK)
    }

    static let rpManifest: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutablePointer<Int>?,
                                           UnsafeMutablePointer<CChar>?, Int) -> Int32 = { call, out, outSize, outLength, err, errSize in
        guarded(err, errSize) {
            let json = Array(try recoveryPoint(call).manifestJSON())
            outLength?.pointee = json.count
            if let out, outSize > 0 {
                let count = min(json.count, outSize - 1)
                for index in 0..<count { out[index] = CChar(bitPattern: json[index]) }
                out[count] = 0
            }
        }
    }

    static let rpRead: @convention(c) (OpaquePointer?, UInt32, UInt64, UnsafeMutableRawPointer?, Int,
                                       UnsafeMutablePointer<CChar>?, Int) -> Int32 = { call, stream, offset, dst, length, err, errSize in
        guarded(err, errSize) {
            guard let dst, length >= 0 else { throw PluginError(.invalid, "rp_read needs a destination") }
            try recoveryPoint(call).read(stream: Int(stream), offset: offset,
                                         into: UnsafeMutableRawBufferPointer(start: dst, count: length))
        }
    }

    static let rpMap: @convention(c) (OpaquePointer?, UInt32, UnsafeMutablePointer<dpm_extent>?, Int, UnsafeMutablePointer<Int>?,
                                      UnsafeMutablePointer<CChar>?, Int) -> Int32 = { call, stream, out, maxCount, count, err, errSize in
        guarded(err, errSize) {
            let extents = try recoveryPoint(call).dataExtents(stream: Int(stream))
            count?.pointee = extents.count
            guard let out, extents.count <= maxCount else { return }
            for (index, extent) in extents.enumerated() {
                out[index] = dpm_extent(offset: extent.offset, length: extent.length, flags: extent.flag.rawValue, reserved: 0)
            }
        }
    }
}
