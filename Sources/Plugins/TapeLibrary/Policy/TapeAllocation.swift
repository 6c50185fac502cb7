import Foundation
import Glibc
import PluginAPI

/// Finds, claims and mounts the tape an archive volume goes to, waiting a bounded time
/// when none is usable, and labels new tapes.
enum TapeAllocation {
    struct Result {
        var mount: TapeMount
        var tape: TapeRecord
        /// The tape must be labelled before use (free or expired).
        var fresh: Bool
    }

    static func allocate(context: TapeContext, library: LibraryRecord, device: TapeLibraryDevice,
                         selection: TapeSelection.Request, continuation: Bool, drives: [Int]?) throws -> Result {
        var rules = selection
        if continuation { rules.colocate = false; rules.standalone = false }
        let deadline = context.deadline
        var refused: Set<String> = []
        while true {
            try TapeInventory.refresh(context: context, library: library, device: device, importMail: true)
            let inventory = try onDevice { try device.changer.inventory() }
            let present = Set(inventory.entries.filter { if case .mail = $0.element { return false } else { return true } }.compactMap(\.barcode))
            let choice: TapeSelection.Choice? = try context.store.update { state in
                let candidates = state.tapes.values.filter { tape in
                    tape.library == library.name && present.contains(tape.barcode) && tape.claim?.isLive != true
                        && !refused.contains(tape.barcode)
                }
                guard let choice = TapeSelection.choose(rules, candidates: Array(candidates), now: Date()) else { return nil }
                let barcode: String
                switch choice { case .append(let code), .fresh(let code): barcode = code }
                state.tapes[barcode]?.claim = TapeRecord.Claim(pid: getpid(), since: Date())
                return choice
            }
            if let choice {
                let (barcode, fresh): (String, Bool)
                switch choice {
                case .append(let code): (barcode, fresh) = (code, false)
                case .fresh(let code): (barcode, fresh) = (code, true)
                }
                do {
                    let mount = try TapeMount.mount(barcode, library: device, drives: drives, deadline: deadline)
                    if (try? mount.open().status())?.writeProtected == true {
                        // The cartridge's write-protect tab is set: leave it for reading only.
                        try? mount.release()
                        try context.store.update { state in state.tapes[barcode]?.claim = nil }
                        refused.insert(barcode)
                        continue
                    }
                    let tape = try context.store.load().tape(barcode)
                    return Result(mount: mount, tape: tape, fresh: fresh)
                } catch {
                    try? context.store.update { state in state.tapes[barcode]?.claim = nil }
                    throw error
                }
            }
            if Date() >= deadline { throw try noTape(context: context, library: library, selection: selection) }
            usleep(500_000)
        }
    }

    static func noTape(context: TapeContext, library: LibraryRecord, selection: TapeSelection.Request) throws -> PluginError {
        let state = try context.store.load()
        let tapes = state.tapes.values.filter { $0.library == library.name }.sorted { $0.barcode < $1.barcode }
        let summary = tapes.isEmpty ? "the library has no tapes" : tapes.map { "\($0.barcode) \($0.state.rawValue)" }.joined(separator: ", ")
        let encryption = selection.encrypted ? " encrypted with key \(selection.fingerprint ?? "?")" : ""
        let insert = library.kind == "vtl"
            ? "`dpm tape insert BARCODE --library \(library.name) --mail-slot 1`"
            : "the library's mail slot"
        return PluginError(.noSpace, "pool '\(selection.pool)' has no usable tape\(encryption) in library \(library.name) after waiting \(Int(context.waitSeconds)) s (\(summary)); "
                           + "mark one free with `dpm tape mark-free BARCODE`, or insert a blank tape into a mail slot with \(insert)")
    }

    /// Writes file 0 of a tape taken for `pool` and records the tape as labelled and empty.
    static func label(_ tape: TapeRecord, drive: TapeDrive, context: TapeContext, pool: String, encryption: JSONValue?) throws -> TapeRecord {
        let (label, updated) = try context.store.update { state -> (TapeLabel, TapeRecord) in
            guard var record = state.tapes[tape.barcode] else { throw PluginError(.notFound, "tape \(tape.barcode) vanished from the state") }
            let (set, sequence) = state.nextSequence(pool: pool)
            let label = TapeLabel(uuid: UUID().uuidString.lowercased(), barcode: tape.barcode, pool: pool, mediaSet: set,
                                  sequence: sequence, serverId: state.serverId, labelled: Date(), encryption: encryption)
            record.uuid = label.uuid
            record.pool = pool
            record.mediaSet = set
            record.sequence = sequence
            record.labelServer = state.serverId
            record.encryption = encryption
            return (label, record)
        }
        try onDevice {
            try drive.rewind()
            try TapeFiles.write(try TapeFormat.labelFile(label), to: drive, recordSize: context.recordSize)
            try drive.writeFilemarks(1)
        }
        return try context.store.update { state in
            var record = updated
            record.state = .free
            record.files = [TapeFileRecord(file: 0, kind: .label)]
            record.appendAt = 1
            record.colocated = false
            record.firstWritten = nil
            record.firstRetentionDays = nil
            record.furthestExpiry = nil
            record.bytesWritten = 0
            record.claim = state.tapes[tape.barcode]?.claim
            state.tapes[tape.barcode] = record
            state.archives.removeAll { $0.volumes.contains { $0.barcode == tape.barcode } }
            return record
        }
    }
}

/// Writing small whole files (labels, catalogs) as records.
enum TapeFiles {
    static func write(_ bytes: [UInt8], to drive: TapeDrive, recordSize: Int) throws {
        var offset = 0
        while offset < bytes.count {
            let count = min(recordSize, bytes.count - offset)
            do {
                try bytes.withUnsafeBytes { try drive.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
            } catch let error as TapeDeviceError where error.isNoSpace {
                try bytes.withUnsafeBytes { try drive.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
            }
            offset += count
        }
    }
}

/// The catalog file written after a session.
enum TapeCatalogs {
    static func file(for tape: TapeRecord, state: ProviderState, adding catalogNumber: Int) -> TapeCatalogFile {
        var entries = tape.files.filter { $0.file < catalogNumber }.map { file in
            TapeCatalogFile.Entry(file: file.file, kind: file.kind, archive: file.archive,
                                  datasource: file.archive.flatMap { state.archive($0)?.description.datasource },
                                  rp: file.archive.flatMap { state.archive($0)?.description.rp }, sequence: file.sequence,
                                  bytes: file.bytes, prefixBytes: file.prefixBytes, archiveOffset: file.archiveOffset,
                                  last: file.last, archiveBytes: file.last == true ? file.archive.flatMap { state.archive($0)?.description.bytes } : nil)
        }
        entries.append(TapeCatalogFile.Entry(file: catalogNumber, kind: .catalog))
        let lastHere = Set(tape.files.filter { $0.last == true }.compactMap(\.archive))
        return TapeCatalogFile(barcode: tape.barcode, tapeUuid: tape.uuid ?? "", serverId: state.serverId, written: Date(),
                               files: entries, archives: state.archives.filter { lastHere.contains($0.description.name) }.map(\.description))
    }
}
