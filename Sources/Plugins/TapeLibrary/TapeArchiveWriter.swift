import Foundation
import Glibc
import PluginAPI

/// Writes one host archive to tape: picks a tape by `TapeSelection`, labels it when new,
/// and writes the archive as volumes (see `TapeFormat`), continuing on the next tape of the
/// set when early warning is reached, then a catalog file. Nothing is listed until
/// `finish(commit: true)` records the archive in the state; a writer that dies leaves at
/// most a partial file after the tape's last complete file, which the next writer
/// overwrites (`appendAt` never moved past it).
final class TapeArchiveWriter: ArchiveWriter {
    struct OpenVolume {
        var barcode: String
        var file: Int
        var sequence: Int
        var prefixBytes: UInt64
        var archiveOffset: UInt64
        var hostBytesWritten: UInt64 = 0
    }

    let context: TapeContext
    let request: ArchiveRequest
    let pool: String
    let expires: Date
    let library: LibraryRecord
    let device: TapeLibraryDevice
    let selection: TapeSelection.Request
    private var mount: TapeMount?
    private var volume: OpenVolume
    private var pending: [UInt8] = []
    private var pendingFront = 0
    private var pendingPrefix = 0
    private var scanner = PaxStreamScanner()
    private var received: UInt64 = 0
    private var volumes: [VolumeRecord] = []
    /// The tapes this archive filled before its current one, as they were before it: an
    /// abandoned archive gives them back (a span cut short must not leave tapes full of a
    /// copy that was never listed).
    private var tapesBefore: [String: TapeRecord] = [:]
    private var reachedEarlyWarning = false
    private var failure: PluginError?
    /// Bytes kept buffered beyond one record, so that a volume can be ended after a whole
    /// header group (header groups of the host's archives are a few blocks).
    static let lookahead = 64 << 10

    init(context: TapeContext, request: ArchiveRequest) throws {
        self.context = context
        self.request = request
        pool = request.pool ?? request.group ?? "default"
        expires = request.expires ?? request.time.addingTimeInterval(Double(request.retentionDays) * 86_400)
        let state = try context.store.load()
        library = try state.library(request.library)
        device = try context.device(library)
        selection = TapeSelection.Request(pool: pool, expires: expires, retentionDays: request.retentionDays,
                                          colocate: request.colocate ?? false, frequency: request.frequency,
                                          fingerprint: request.encryption?["key_fingerprint"]?.stringValue,
                                          encrypted: request.encryption != nil, standalone: device.driveCount == 1)
        if state.archive(request.name) != nil {
            throw PluginError(.invalid, "an archive named \(request.name) is already on tape; names must be unique")
        }
        volume = OpenVolume(barcode: "", file: 0, sequence: 0, prefixBytes: 0, archiveOffset: 0)
        try startVolume(sequence: 1, at: 0, cut: .boundary, continuation: false)
    }

    // MARK: Volumes

    /// Allocates and mounts a tape, labels it if new, positions it and queues the prefix.
    private func startVolume(sequence: Int, at archiveOffset: UInt64, cut: PaxStreamScanner.Cut, continuation: Bool) throws {
        var tape: TapeRecord
        var drive: TapeDrive
        while true {
            let allocation = try TapeAllocation.allocate(context: context, library: library, device: device, selection: selection,
                                                         continuation: continuation, drives: request.drives)
            mount = allocation.mount
            drive = try allocation.mount.open()
            tape = allocation.tape
            if allocation.fresh {
                tape = try TapeAllocation.label(tape, drive: drive, context: context, pool: pool, encryption: request.encryption)
            }
            try onDevice {
                try drive.rewind()
                if tape.appendAt > 0 { try drive.forwardSpaceFiles(tape.appendAt) }
            }
            // WORM media cannot overwrite the partial file a killed writer left: such a tape
            // is suspect (its end is in doubt) and another tape is taken.
            if tape.worm, (try? drive.status())?.endOfData == false {
                let barcode = tape.barcode
                try mount?.release()
                mount = nil
                try context.store.update { state in
                    state.tapes[barcode]?.state = .suspect
                    state.tapes[barcode]?.claim = nil
                }
                continue
            }
            break
        }
        let state = try context.store.load()
        let description = VolumeDescription(
            archive: request.name, datasource: request.datasource, datasourceName: request.datasourceName, rp: request.rp,
            time: request.time, expires: expires, pool: pool, colocate: selection.colocate, sequence: sequence,
            archiveOffset: archiveOffset, barcode: tape.barcode, tapeUuid: tape.uuid ?? "", mediaSet: tape.mediaSet ?? "",
            serverId: state.serverId, written: Date(), encryption: request.encryption, summary: request.summary)
        let prefix: [UInt8]
        if case .insideData(let member, let offset) = cut {
            prefix = try TapeFormat.continuationPrefix(description, member: member, offset: offset)
        } else {
            prefix = try TapeFormat.freshVolumePrefix(description)
        }
        volume = OpenVolume(barcode: tape.barcode, file: tape.appendAt, sequence: sequence,
                            prefixBytes: UInt64(prefix.count), archiveOffset: archiveOffset)
        let rest = Array(pending[pendingFront...])
        pending = prefix + rest
        pendingFront = 0
        pendingPrefix = prefix.count
    }

    private var pendingCount: Int { pending.count - pendingFront }

    private func consumePending(_ count: Int) {
        let prefixPart = min(count, pendingPrefix)
        pendingPrefix -= prefixPart
        volume.hostBytesWritten += UInt64(count - prefixPart)
        pendingFront += count
        if pendingFront >= 1 << 20 {
            // Shift the rest down in place: the buffer keeps its capacity, so the stream
            // flows through the same pages instead of fresh allocations.
            let rest = pending.count - pendingFront
            let front = pendingFront
            pending.withUnsafeMutableBytes { raw in
                if rest > 0 { memmove(raw.baseAddress!, raw.baseAddress! + front, rest) }
            }
            pending.removeLast(front)
            pendingFront = 0
        }
    }

    private func where_() -> String {
        "tape \(volume.barcode) file \(volume.file) (archive \(request.name), volume \(volume.sequence))"
    }

    /// Writes whole records while enough is buffered (everything when `final`).
    private func drain(final: Bool) throws {
        while pendingCount >= context.recordSize + (final ? 0 : Self.lookahead) || (final && pendingCount > 0) {
            let count = min(context.recordSize, pendingCount)
            let drive = try mountedDrive()
            do {
                try pending.withUnsafeBytes { raw in
                    try drive.write(UnsafeRawBufferPointer(rebasing: raw[pendingFront..<(pendingFront + count)]))
                }
                consumePending(count)
            } catch let error as TapeDeviceError where error.isNoSpace {
                reachedEarlyWarning = true
                try span()
            } catch let error as TapeDeviceError {
                throw PluginError(.io, "\(where_()): \(error.message)")
            }
        }
    }

    private func mountedDrive() throws -> TapeDrive {
        guard let mount else { throw PluginError(.internalError, "archive \(request.name): no tape is mounted") }
        return try mount.open()
    }

    /// Writes `bytes` past early warning: st lets every other write through until the
    /// physical end (where it fails with EIO).
    private func writeTrailer(_ bytes: ArraySlice<UInt8>, drive: TapeDrive) throws {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let count = min(context.recordSize, bytes.endIndex - offset)
            var attempts = 0
            while true {
                do {
                    try bytes.withUnsafeBytes { raw in
                        try drive.write(UnsafeRawBufferPointer(rebasing: raw[(offset - bytes.startIndex)..<(offset - bytes.startIndex + count)]))
                    }
                    break
                } catch let error as TapeDeviceError where error.isNoSpace && attempts == 0 {
                    attempts += 1
                } catch let error as TapeDeviceError {
                    throw PluginError(.noSpace, "\(where_()): the tape reached its physical end while ending the volume: \(error.message)")
                }
            }
            offset += count
        }
    }

    /// Ends the current volume at the first clean point and continues on the next tape.
    private func span() throws {
        let drive = try mountedDrive()
        let frontHost = received - UInt64(pendingCount - pendingPrefix)
        let (cutOffset, cut) = scanner.cleanCut(atOrAfter: frontHost) ?? (frontHost, .boundary)
        let trailerCount = pendingPrefix + Int(cutOffset - frontHost)
        try writeTrailer(pending[pendingFront..<(pendingFront + trailerCount)], drive: drive)
        consumePending(trailerCount)
        try onDevice { try drive.writeFilemarks(1) }
        let finished = VolumeRecord(barcode: volume.barcode, file: volume.file, sequence: volume.sequence,
                                    bytes: volume.hostBytesWritten, prefixBytes: volume.prefixBytes, archiveOffset: volume.archiveOffset)
        volumes.append(finished)
        try closeTape(drive: drive, lastVolume: false, full: true)
        scanner.forget(before: cutOffset)
        try startVolume(sequence: volume.sequence + 1, at: cutOffset, cut: cut, continuation: true)
    }

    /// Writes the tape's catalog file after the volume just ended and records both files.
    private func closeTape(drive: TapeDrive, lastVolume: Bool, full: Bool, archive: ArchiveRecord? = nil) throws {
        let volumeFile = TapeFileRecord(file: volume.file, kind: .volume, archive: request.name, sequence: volume.sequence,
                                        bytes: volume.hostBytesWritten, prefixBytes: volume.prefixBytes,
                                        archiveOffset: volume.archiveOffset, last: lastVolume)
        var state = try context.store.load()
        var tape = try state.tape(volume.barcode)
        if !lastVolume && tapesBefore[volume.barcode] == nil { tapesBefore[volume.barcode] = tape }
        tape.files = tape.files.filter { $0.file < volume.file } + [volumeFile]
        if let archive { state.archives.append(archive) }
        let catalogNumber = volume.file + 1
        let catalog = TapeCatalogs.file(for: tape, state: state, adding: catalogNumber)
        var catalogWritten = true
        do {
            try writeTrailer(try TapeFormat.catalogFile(catalog)[...], drive: drive)
            try onDevice { try drive.writeFilemarks(1) }
        } catch let error as PluginError where error.code == .noSpace {
            catalogWritten = false  // the volumes describe themselves; recatalog scans them
        }
        let status = try? drive.status()
        let isFull = full || reachedEarlyWarning || status?.endOfTape == true
        try context.store.update { state in
            guard var tape = state.tapes[volume.barcode] else { return }
            tape.files = tape.files.filter { $0.file < volume.file } + [volumeFile]
                + (catalogWritten ? [TapeFileRecord(file: catalogNumber, kind: .catalog)] : [])
            tape.appendAt = catalogWritten ? catalogNumber + 1 : volume.file + 1
            tape.bytesWritten += volume.hostBytesWritten + volume.prefixBytes
            let now = Date()
            if tape.firstWritten == nil {
                tape.firstWritten = now
                tape.firstRetentionDays = request.retentionDays
                tape.colocated = selection.colocate
            }
            tape.furthestExpiry = max(tape.furthestExpiry ?? expires, expires)
            tape.claim = nil
            if isFull {
                tape.state = .full
            } else {
                let daily = selection.standalone && request.frequency == "daily" && !selection.colocate
                tape.state = TapeSelection.staysAppendable(tape, standaloneDaily: daily, now: now) ? .appendable : .offsiteReady
            }
            state.tapes[volume.barcode] = tape
            if let archive { state.archives.removeAll { $0.description.name == archive.description.name }; state.archives.append(archive) }
        }
        try mount?.release()
        mount = nil
    }

    // MARK: ArchiveWriter

    func write(_ data: UnsafeRawBufferPointer) throws {
        if let failure { throw failure }
        do {
            scanner.feed(data)
            received += UInt64(data.count)
            pending.append(contentsOf: data)
            try drain(final: false)
        } catch let error as PluginError {
            failure = error
            throw error
        }
    }

    func finish(commit: Bool, call: HostCall) throws -> ArchiveDescription {
        var description = ArchiveDescription(name: request.name, datasource: request.datasource, rp: request.rp, time: request.time,
                                             expires: expires, bytes: received, location: "")
        description.datasourceName = request.datasourceName
        description.encryption = request.encryption
        description.summary = request.summary
        guard commit, failure == nil else {
            try abandon()
            if let failure { throw failure }
            return description
        }
        do {
            try drain(final: true)
            let drive = try mountedDrive()
            try onDevice { try drive.writeFilemarks(1) }
        } catch {
            try? abandon()
            throw error
        }
        let last = VolumeRecord(barcode: volume.barcode, file: volume.file, sequence: volume.sequence,
                                bytes: volume.hostBytesWritten, prefixBytes: volume.prefixBytes, archiveOffset: volume.archiveOffset)
        volumes.append(last)
        description.location = volumes.map { "\($0.barcode) file \($0.file)" }.joined(separator: ", ")
        description.volumes = volumes.map { volume in
            .object(["medium": .string(volume.barcode), "file": .number(Double(volume.file)),
                     "bytes": .number(Double(volume.bytes)), "sequence": .number(Double(volume.sequence))])
        }
        let record = ArchiveRecord(description: description, pool: pool, colocate: selection.colocate,
                                   retentionDays: request.retentionDays, volumes: volumes)
        try closeTape(drive: try mountedDrive(), lastVolume: true, full: false, archive: record)
        tapesBefore = [:]  // committed: the tapes it filled keep it
        return description
    }

    /// Drops the archive: the partial file stays after the tape's last complete file and
    /// is overwritten by the next writer.
    private func abandon() throws {
        let barcode = volume.barcode
        try? mount?.release()
        mount = nil
        let earlier = tapesBefore
        tapesBefore = [:]
        try context.store.update { state in
            state.tapes[barcode]?.claim = nil
            for (earlierBarcode, var before) in earlier {
                before.claim = nil
                state.tapes[earlierBarcode] = before
            }
        }
    }

    deinit { try? abandon() }
}
