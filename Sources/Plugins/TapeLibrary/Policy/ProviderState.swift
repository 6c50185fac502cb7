import Foundation
import Glibc
import PluginAPI

/// What a tape is good for (DPM's tape states).
enum TapeState: String, Codable, Sendable, CaseIterable {
    /// Blank, erased or marked free: may be labelled and written by any pool.
    case free
    /// Holds archives and may take more (co-location window open, or daily copies on a
    /// standalone drive).
    case appendable
    /// Reached early warning.
    case full
    /// Holds archives and takes no more: ready to leave the library.
    case offsiteReady = "offsite-ready"
    /// Every archive on it has expired: reused automatically (overwritten from file 0,
    /// without an erase first).
    case expired
    /// Written by another dpm server: restorable after recatalog, never overwritten until
    /// marked free.
    case imported
    /// Holds data that is not a dpm tape: never overwritten until erased or marked free.
    case unrecognised
    /// A write failed in a way that leaves the tape's end in doubt (WORM media with a
    /// partial file): not written again until erased or marked free.
    case suspect
    /// A cleaning cartridge (barcode CLN…).
    case cleaning
}

/// A library the provider uses.
struct LibraryRecord: Codable, Equatable {
    var name: String
    /// "vtl" or "st".
    var kind: String
    /// VTL: its folder.
    var dir: String?
    /// st: the drives' no-rewind nodes and the changer's SCSI generic node (nil: a
    /// standalone drive).
    var driveDevices: [String]?
    var changer: String?
    var added: Date
}

/// One file on a tape, as this provider wrote or found it.
struct TapeFileRecord: Codable, Equatable {
    var file: Int
    var kind: TapeCatalogFile.Entry.Kind
    var archive: String?
    var sequence: Int?
    var bytes: UInt64?
    var prefixBytes: UInt64?
    var archiveOffset: UInt64?
    var last: Bool?
}

struct TapeRecord: Codable, Equatable {
    var barcode: String
    var library: String
    var state: TapeState
    var uuid: String?
    var pool: String?
    var mediaSet: String?
    var sequence: Int?
    /// The server id in its label.
    var labelServer: String?
    var encryption: JSONValue?
    var worm = false
    /// The file number the next archive starts at (after the last complete file).
    var appendAt = 0
    var files: [TapeFileRecord] = []
    /// Co-location bookkeeping: whether its archives were written co-located, when the first
    /// was written and with what retention, and the furthest expiry on it.
    var colocated = false
    var firstWritten: Date?
    var firstRetentionDays: Int?
    var furthestExpiry: Date?
    var bytesWritten: UInt64 = 0
    /// The writer process using the tape; a claim of a process that is gone is void.
    var claim: Claim?

    struct Claim: Codable, Equatable {
        var pid: Int32
        var since: Date
        var isLive: Bool { kill(pid, 0) == 0 || errno == EPERM }
    }

    var fingerprint: String? { encryption?["key_fingerprint"]?.stringValue }
}

/// One archive volume's place.
struct VolumeRecord: Codable, Equatable {
    var barcode: String
    var file: Int
    var sequence: Int
    var bytes: UInt64
    var prefixBytes: UInt64
    var archiveOffset: UInt64
}

struct ArchiveRecord: Codable, Equatable {
    var description: ArchiveDescription
    var pool: String
    var colocate: Bool
    var retentionDays: Int
    var volumes: [VolumeRecord]
}

/// The provider's whole state, `STATE_DIR/tape-state.json`, changed only under
/// `STATE_DIR/tape-state.lock` (each dpm command and job is its own process).
struct ProviderState: Codable, Equatable {
    var format = 1
    var serverId: String
    var libraries: [LibraryRecord] = []
    var tapes: [String: TapeRecord] = [:]
    var archives: [ArchiveRecord] = []
    /// Per pool: the current media set and the last sequence number given in it.
    var mediaSets: [String: MediaSetRecord] = [:]
    /// Volumes recatalog found whose archive is not complete yet (other tapes to read).
    var foundVolumes: [String: VolumeDescription] = [:]

    struct MediaSetRecord: Codable, Equatable {
        var id: String
        var lastSequence: Int
    }

    func library(_ name: String?) throws -> LibraryRecord {
        guard let library = name.map({ name in libraries.first { $0.name == name } }) ?? libraries.first else {
            if let name {
                throw PluginError(.notFound, "no tape library '\(name)' (known: \(libraries.map(\.name).joined(separator: ", "))); see `dpm tape library list`")
            }
            throw PluginError(.notFound, "no tape library is configured; add one with `dpm tape library add NAME --kind vtl --dir DIR --slots N --drives M --capacity SIZE`")
        }
        return library
    }

    func tape(_ barcode: String) throws -> TapeRecord {
        guard let tape = tapes[barcode] else {
            throw PluginError(.notFound, "no tape \(barcode) is known; see `dpm tape list`, or `dpm tape library inventory`")
        }
        return tape
    }

    func archive(_ name: String) -> ArchiveRecord? { archives.first { $0.description.name == name } }

    /// The next media-set sequence for a pool (starting a set when the pool has none).
    mutating func nextSequence(pool: String) -> (String, Int) {
        var set = mediaSets[pool] ?? MediaSetRecord(id: UUID().uuidString.lowercased(), lastSequence: 0)
        set.lastSequence += 1
        mediaSets[pool] = set
        return (set.id, set.lastSequence)
    }
}

/// Loads and saves `ProviderState` under its lock.
struct ProviderStateStore {
    let directory: String
    var path: String { directory + "/tape-state.json" }
    var lockPath: String { directory + "/tape-state.lock" }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func load() throws -> ProviderState {
        guard let data = StateFile.read(path) else { return ProviderState(serverId: UUID().uuidString.lowercased()) }
        do {
            return try JSONCoding.decode(ProviderState.self, from: data)
        } catch {
            throw PluginError(.corrupt, "tape state \(path) is damaged (\(error)); restore it, or move it away and run `dpm tape recatalog` for each tape")
        }
    }

    /// Reads, changes and durably writes the state under the lock.
    @discardableResult
    func update<T>(_ change: (inout ProviderState) throws -> T) throws -> T {
        try FileLock.withLock(lockPath) {
            var state = try load()
            let before = state
            let result = try change(&state)
            if state != before || StateFile.read(path) == nil {
                try StateFile.writeAtomically(try JSONCoding.encode(state, pretty: true), to: path)
            }
            return result
        }
    }
}
