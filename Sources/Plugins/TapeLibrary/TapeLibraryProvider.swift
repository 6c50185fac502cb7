import Foundation
import PluginAPI

/// Long-term protection on tape (behaviour 7): virtual tape libraries and Linux st drives
/// with SCSI changers, GNU tar-readable volumes (`TapeFormat`), media pools, co-location
/// and tape states (`TapeSelection`), recatalog from the tapes alone.
///
/// State lives in the host-given `state_dir` (`ProviderState`); every call reopens it, as
/// each dpm command and job is its own process. Settings: `tape-library.wait_seconds`
/// (how long a job waits for a usable tape or drive; default 300).
public final class TapeLibraryProvider: TierProvider {
    public static let version = "1.0.0"

    public init() {}

    public let descriptor = ProviderDescriptor(
        id: "tape-library",
        displayName: "Long-term tape library (SCSI tape, medium changer, virtual tape library)",
        version: TapeLibraryProvider.version,
        kind: .tier,
        capabilities: [.longTermRetention],
        maxRetentionDays: 99 * 365 + 24,
        status: .ready("virtual tape libraries and st drives with mtx changers; GNU tar-readable volumes")
    )

    public func storeBegin(_ request: ArchiveRequest, call: HostCall) throws -> ArchiveWriter {
        try TapeArchiveWriter(context: try TapeContext(call: call), request: request)
    }

    public func list(_ filter: ArchiveFilter, call: HostCall) throws -> ArchiveList {
        try Self.list(filter, context: try TapeContext(call: call))
    }

    static func list(_ filter: ArchiveFilter, context: TapeContext) throws -> ArchiveList {
        let archives = try context.store.load().archives.map(\.description)
            .filter { filter.datasource == nil || $0.datasource == filter.datasource || $0.datasourceName == filter.datasource }
            .sorted { ($0.time, $0.name) < ($1.time, $1.name) }
        return ArchiveList(archives: archives)
    }

    public func readBegin(_ request: ReadArchiveRequest, call: HostCall) throws -> ArchiveReader {
        try TapeArchiveReader(context: try TapeContext(call: call), name: request.name)
    }

    public func expire(_ request: ExpireRequest, call: HostCall) throws -> ExpireReply {
        try Self.expire(now: request.now, context: try TapeContext(call: call))
    }

    /// Drops archives past their expiry; a tape left with no live archive becomes expired
    /// (imported tapes stay imported: they are never reused until marked free).
    static func expire(now: Date, context: TapeContext) throws -> ExpireReply {
        try context.store.update { state in
            let gone = state.archives.filter { $0.description.expires <= now }
            guard !gone.isEmpty else { return ExpireReply(expired: []) }
            let names = Set(gone.map(\.description.name))
            state.archives.removeAll { names.contains($0.description.name) }
            let touched = Set(gone.flatMap { $0.volumes.map(\.barcode) })
            for barcode in touched {
                guard var tape = state.tapes[barcode], [.appendable, .full, .offsiteReady].contains(tape.state) else { continue }
                if !state.archives.contains(where: { $0.volumes.contains { $0.barcode == barcode } }) {
                    tape.state = .expired
                    state.tapes[barcode] = tape
                }
            }
            return ExpireReply(expired: gone.map(\.description.name).sorted())
        }
    }

    public func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue {
        try TapeCommands.run(request, context: try TapeContext(call: call))
    }
}
