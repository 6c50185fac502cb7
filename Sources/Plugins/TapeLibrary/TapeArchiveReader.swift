import Foundation
import PluginAPI

/// Reads one archive back: mounts only the tapes holding its volumes, spaces to each
/// volume's file with MTFSF (the rest of the tape is never read), checks the volume's
/// description, skips its prefix and returns exactly the host's bytes.
final class TapeArchiveReader: ArchiveReader {
    let context: TapeContext
    let record: ArchiveRecord
    let device: TapeLibraryDevice
    var archive: ArchiveDescription { record.description }
    private var nextVolume = 0
    private var mount: TapeMount?
    private var file: TapeFileReader?
    private var remaining: UInt64 = 0
    private var current: VolumeRecord?
    private var delivered: UInt64 = 0

    init(context: TapeContext, name: String) throws {
        self.context = context
        let state = try context.store.load()
        guard let record = state.archive(name) else {
            throw PluginError(.notFound, "no archive \(name) is on tape; see `dpm tape list`, or run `dpm tape recatalog BARCODE` for a tape that holds it")
        }
        self.record = record
        guard let first = record.volumes.first, let tape = state.tapes[first.barcode] else {
            throw PluginError(.corrupt, "archive \(name) has no volumes in the tape state; run `dpm tape recatalog`")
        }
        device = try context.device(try state.library(tape.library))
    }

    private func place(_ volume: VolumeRecord) -> String {
        "tape \(volume.barcode) file \(volume.file) (archive \(record.description.name), volume \(volume.sequence) of \(record.volumes.count))"
    }

    private func openNextVolume() throws -> Bool {
        try release()
        let volumes = record.volumes.sorted { $0.sequence < $1.sequence }
        guard nextVolume < volumes.count else { return false }
        let volume = volumes[nextVolume]
        nextVolume += 1
        current = volume
        let mount = try TapeMount.mount(volume.barcode, library: device, drives: nil, deadline: context.deadline)
        self.mount = mount
        let drive = try mount.open()
        do {
            try drive.rewind()
            if volume.file > 0 { try drive.forwardSpaceFiles(volume.file) }
            let reader = TapeFileReader(drive: drive, recordSize: context.recordSize)
            guard let (_, records, _, consumed) = try reader.firstMember(),
                  let json = records[TapeFormat.volumeKeyword],
                  let description = try? JSONCoding.decode(VolumeDescription.self, from: Data(json.utf8)) else {
                throw PluginError(.corrupt, "\(place(volume)) does not start with a dpm volume description; the tape was overwritten or the catalog is stale: run `dpm tape recatalog \(volume.barcode)`")
            }
            guard description.archive == record.description.name, description.sequence == volume.sequence,
                  consumed == volume.prefixBytes else {
                throw PluginError(.corrupt, "\(place(volume)) holds \(description.archive) volume \(description.sequence) instead; run `dpm tape recatalog \(volume.barcode)`")
            }
            file = reader
            remaining = volume.bytes
            return true
        } catch let error as TapeDeviceError {
            throw readError(error, volume: volume, drive: drive)
        }
    }

    private func readError(_ error: TapeDeviceError, volume: VolumeRecord, drive: TapeDrive) -> PluginError {
        let block = (try? drive.tell()).map { " at block \($0)" } ?? ""
        return PluginError(.io, "\(place(volume)): read error\(block): \(error.message); the other archives on this tape are not affected")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while remaining == 0 {
            guard try openNextVolume() else {
                guard delivered == record.description.bytes else {
                    throw PluginError(.corrupt, "archive \(record.description.name): read \(delivered) bytes, expected \(record.description.bytes)")
                }
                return 0
            }
        }
        guard let file, let volume = current else { return 0 }
        let want = Int(min(UInt64(buffer.count), remaining))
        do {
            let count = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            guard count > 0 else {
                throw PluginError(.corrupt, "\(place(volume)) ends \(remaining) bytes early; the tape may have been overwritten")
            }
            remaining -= UInt64(count)
            delivered += UInt64(count)
            return count
        } catch let error as TapeDeviceError {
            throw readError(error, volume: volume, drive: file.drive)
        }
    }

    private func release() throws {
        file = nil
        try mount?.release()
        mount = nil
    }

    func close() { try? release() }
}
