import Foundation
import PluginAPI

/// What a provider can reach through host callbacks during one call: the recovery point it
/// may read, and where the host sends progress.
public protocol RecoveryPointAccess: AnyObject {
    /// The manifest JSON (`host->rp_manifest`).
    func manifestJSON() throws -> Data
    /// Reads exactly `buffer.count` bytes of a stream (`host->rp_read`).
    func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    /// The extents that hold data (`host->rp_map`).
    func dataExtents(stream: Int) throws -> [Extent]
}

/// The host object behind a `dpm_call *`: one provider call in progress.
///
/// A call context is shared by the thread that calls the provider and any thread that
/// cancels it; cancellation goes through a thread-safe flag.
public final class CallContext: @unchecked Sendable {
    public let providerID: String
    let settings: [String: String]
    public var recoveryPoint: RecoveryPointAccess?
    public var onProgress: ((UInt64, UInt64) -> Void)?
    public var onLog: ((LogLevel, String) -> Void)?

    /// Raised to ask the provider to stop (it sees `host->cancelled`).
    public let cancellation = CancellationFlag()

    public init(providerID: String, settings: [String: String]) {
        self.providerID = providerID
        self.settings = settings
    }

    public func cancel() { cancellation.cancel() }

    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `cancelled` once `cancel()` was called.
    public func checkCancelled() throws { try cancellation.check() }

    var handle: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ handle: OpaquePointer?) -> CallContext? {
        guard let handle else { return nil }
        return Unmanaged<CallContext>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
    }
}
