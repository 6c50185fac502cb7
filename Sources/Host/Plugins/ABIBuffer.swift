import Foundation

/// The host object behind a `dpm_buffer *`: bytes a plugin appends with `buffer_append`.
final class ABIBuffer {
    var bytes: [UInt8] = []

    var handle: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ handle: OpaquePointer?) -> ABIBuffer? {
        guard let handle else { return nil }
        return Unmanaged<ABIBuffer>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
    }

    var data: Data { Data(bytes) }
}
