import DPMPluginABI
import Foundation

public enum ProviderKind: String, Codable, Sendable {
    case workload
    case tier

    var abiValue: UInt32 { self == .workload ? UInt32(DPM_KIND_WORKLOAD) : UInt32(DPM_KIND_TIER) }
}

/// The capability flags of dpm_plugin.h (`DPM_CAP_*`).
public struct Capabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let onlineBackup = Capabilities(rawValue: 1 << 0)
    public static let offlineBackup = Capabilities(rawValue: 1 << 1)
    public static let changeTracking = Capabilities(rawValue: 1 << 2)
    public static let itemRecovery = Capabilities(rawValue: 1 << 3)
    public static let applicationItems = Capabilities(rawValue: 1 << 4)
    public static let longTermRetention = Capabilities(rawValue: 1 << 5)
    public static let blockStreams = Capabilities(rawValue: 1 << 6)
    public static let fileStreams = Capabilities(rawValue: 1 << 7)
    public static let restoreOriginal = Capabilities(rawValue: 1 << 8)
    public static let restoreAlternate = Capabilities(rawValue: 1 << 9)
    public static let expressFull = Capabilities(rawValue: 1 << 10)

    /// Stable names, in bit order, as `dpm plugins list --json` prints them.
    public static let names: [(Capabilities, String)] = [
        (.onlineBackup, "online-backup"), (.offlineBackup, "offline-backup"),
        (.changeTracking, "change-tracking"), (.itemRecovery, "item-level-recovery"),
        (.applicationItems, "application-items"), (.longTermRetention, "long-term-retention"),
        (.blockStreams, "block-streams"), (.fileStreams, "file-streams"),
        (.restoreOriginal, "restore-original"), (.restoreAlternate, "restore-alternate"),
        (.expressFull, "express-full"),
    ]

    public var names: [String] {
        Self.names.compactMap { contains($0.0) ? $0.1 : nil }
            + (rawValue >> UInt64(Self.names.count) != 0 ? ["unknown-0x\(String(rawValue, radix: 16))"] : [])
    }
}

/// Whether a provider's work is built. A planned provider refuses every call with
/// `DPM_ERR_PLANNED` and the one line saying what is missing.
public enum ProviderStatus: Sendable, Equatable {
    case ready(String)
    case planned(String)
}

public struct ProviderDescriptor: Sendable {
    public var id: String
    public var displayName: String
    public var version: String
    public var kind: ProviderKind
    public var capabilities: Capabilities
    public var maxRetentionDays: Int
    public var status: ProviderStatus

    public init(id: String, displayName: String, version: String, kind: ProviderKind,
                capabilities: Capabilities, maxRetentionDays: Int = 0, status: ProviderStatus) {
        self.id = id; self.displayName = displayName; self.version = version; self.kind = kind
        self.capabilities = capabilities; self.maxRetentionDays = maxRetentionDays; self.status = status
    }
}

/// Something a plugin offers the host. Implement `WorkloadProvider` or `TierProvider`.
public protocol Provider: AnyObject {
    var descriptor: ProviderDescriptor { get }
}

/// A provider of data to protect (dpm_workload_ops). Every method may throw `PluginError`;
/// the defaults answer `unsupported`.
public protocol WorkloadProvider: Provider {
    func enumerate(call: HostCall) throws -> [DataSourceDescription]
    func prepareSnapshot(_ request: SnapshotRequest, call: HostCall) throws -> WorkloadSnapshot
    func restore(_ request: RestoreRequest, call: HostCall) throws -> JSONValue
    func browse(_ request: BrowseRequest, call: HostCall) throws -> BrowseReply
    func extract(_ request: ExtractRequest, call: HostCall) throws -> JSONValue
    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue
}

/// A consistent view of one data source, alive between prepare and finish.
public protocol WorkloadSnapshot: AnyObject {
    var description: SnapshotDescription { get }
    /// Extents covering the whole stream in order: data, zero or excluded.
    func extents(stream: Int, call: HostCall) throws -> [Extent]
    /// The ranges that may have changed since `token`, or nil when the provider cannot vouch
    /// for them (the host then hashes every allocated block).
    func changes(stream: Int, since token: String, call: HostCall) throws -> [Extent]?
    /// Reads exactly `buffer.count` bytes at `offset`.
    func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Releases the snapshot; called exactly once after a successful prepare.
    func finish(committed: Bool, call: HostCall) throws -> SnapshotFinish
}

public extension WorkloadProvider {
    func enumerate(call: HostCall) throws -> [DataSourceDescription] { throw unsupported("enumerate") }
    func prepareSnapshot(_ request: SnapshotRequest, call: HostCall) throws -> WorkloadSnapshot {
        throw unsupported("backup")
    }
    func restore(_ request: RestoreRequest, call: HostCall) throws -> JSONValue { throw unsupported("restore") }
    func browse(_ request: BrowseRequest, call: HostCall) throws -> BrowseReply { throw unsupported("browse") }
    func extract(_ request: ExtractRequest, call: HostCall) throws -> JSONValue { throw unsupported("extract") }
    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue {
        throw PluginError(.unsupported, "\(descriptor.id) has no command '\(request.verb)'")
    }
}

/// A long-term tier (dpm_tier_ops).
public protocol TierProvider: Provider {
    func storeBegin(_ request: ArchiveRequest, call: HostCall) throws -> ArchiveWriter
    func list(_ filter: ArchiveFilter, call: HostCall) throws -> ArchiveList
    func readBegin(_ request: ReadArchiveRequest, call: HostCall) throws -> ArchiveReader
    func expire(_ request: ExpireRequest, call: HostCall) throws -> ExpireReply
    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue
}

/// A tier that keeps objects (ABI 1.1 object calls), so the host uploads only missing
/// chunks and reads any byte range back. Conform to it in addition to `TierProvider`; the
/// Swift layer then fills the object calls of the table. Errors: `notFound` for a missing
/// object, `locked` for a version whose lock has not expired.
public protocol ObjectTierProvider: TierProvider {
    func putObject(_ key: String, _ data: UnsafeRawBufferPointer, lock: ObjectLock?, call: HostCall) throws -> ObjectPutReply
    /// Hands the bytes of [offset, offset + length) (length 0: to the end) to `consume`.
    func getObject(_ key: String, offset: UInt64, length: UInt64, call: HostCall, consume: (UnsafeRawBufferPointer) throws -> Void) throws
    func listObjects(_ request: ObjectListRequest, call: HostCall) throws -> ObjectListReply
    func deleteObject(_ key: String, versionId: String?, bypassGovernance: Bool, call: HostCall) throws
    func retainObject(_ key: String, versionId: String?, lock: ObjectLock, call: HostCall) throws
}

public protocol ArchiveWriter: AnyObject {
    func write(_ data: UnsafeRawBufferPointer) throws
    /// Makes the archive durable (commit) or discards it; called exactly once.
    func finish(commit: Bool, call: HostCall) throws -> ArchiveDescription
}

public protocol ArchiveReader: AnyObject {
    var archive: ArchiveDescription { get }
    /// Reads up to `buffer.count` bytes; 0 means the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func close()
}

public extension TierProvider {
    func storeBegin(_ request: ArchiveRequest, call: HostCall) throws -> ArchiveWriter { throw unsupported("store") }
    func list(_ filter: ArchiveFilter, call: HostCall) throws -> ArchiveList { throw unsupported("list") }
    func readBegin(_ request: ReadArchiveRequest, call: HostCall) throws -> ArchiveReader { throw unsupported("read") }
    func expire(_ request: ExpireRequest, call: HostCall) throws -> ExpireReply { throw unsupported("expire") }
    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue {
        throw PluginError(.unsupported, "\(descriptor.id) has no command '\(request.verb)'")
    }
}

extension Provider {
    /// The error for an operation this provider does not offer; a planned provider says
    /// what is missing instead.
    public func unsupported(_ operation: String) -> PluginError {
        if case .planned(let missing) = descriptor.status {
            return PluginError(.planned, "\(descriptor.id): \(missing)")
        }
        return PluginError(.unsupported, "\(descriptor.id) does not support \(operation)")
    }
}
