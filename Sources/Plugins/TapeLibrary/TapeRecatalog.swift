import Foundation
import PluginAPI

/// Rebuilds the provider's knowledge of one tape from the tape alone: its label (file 0),
/// then its last catalog file; when the tape does not end with a catalog (a session was
/// killed), the first member of every file is read instead (MTFSF between them), and
/// volumes no catalog vouches for are read to their end to count their bytes and check that
/// they are complete. A tape labelled by another server becomes `imported`.
enum TapeRecatalog {
    struct Found {
        var description: VolumeDescription
        var file: TapeFileRecord
    }

    static func run(barcode: String, context: TapeContext) throws -> JSONValue {
        var state = try context.store.load()
        let tape = try state.tape(barcode)
        let library = try state.library(tape.library)
        let device = try context.device(library)
        let mount = try TapeMount.mount(barcode, library: device, drives: nil, deadline: context.deadline)
        defer { try? mount.release() }
        let drive = try mount.open()
        try onDevice { try drive.rewind() }
        let labelReader = TapeFileReader(drive: drive)
        guard let (header, _, content, _) = try onDevice({ try labelReader.firstMember() }), header.name == TapeFormat.labelPath,
              let label = try? JSONCoding.decode(TapeLabel.self, from: Data(content)) else {
            let blank = labelReader.position == 0
            try context.store.update { state in state.tapes[barcode]?.state = blank ? .free : .unrecognised }
            return .object(["barcode": .string(barcode), "state": .string(blank ? "free" : "unrecognised"), "archives": .array([])])
        }
        try onDevice { try drive.spaceToEndOfData() }
        let files = max(1, (try onDevice { try drive.status() }).fileNumber)
        var found: [Found] = []
        var catalog: TapeCatalogFile?
        try onDevice { try drive.rewind() }
        for number in 1..<max(1, files) {
            try onDevice { try drive.rewind(); try drive.forwardSpaceFiles(number) }
            let reader = TapeFileReader(drive: drive)
            guard let (header, records, content, consumed) = try onDevice({ try reader.firstMember() }) else { continue }
            if header.name == TapeFormat.catalogPath, let file = try? JSONCoding.decode(TapeCatalogFile.self, from: Data(content)) {
                catalog = file
            } else if let json = records[TapeFormat.volumeKeyword],
                      let description = try? JSONCoding.decode(VolumeDescription.self, from: Data(json.utf8)) {
                found.append(Found(description: description,
                                   file: TapeFileRecord(file: number, kind: .volume, archive: description.archive, sequence: description.sequence,
                                                        bytes: nil, prefixBytes: consumed, archiveOffset: description.archiveOffset, last: nil)))
            }
        }
        // Byte counts and completeness: from the last catalog, else by reading the volume.
        for index in found.indices {
            if let entry = catalog?.files.first(where: { $0.file == found[index].file.file && $0.archive == found[index].description.archive }) {
                found[index].file.bytes = entry.bytes
                found[index].file.last = entry.last
                continue
            }
            try onDevice { try drive.rewind(); try drive.forwardSpaceFiles(found[index].file.file) }
            let reader = TapeFileReader(drive: drive)
            var scanner = PaxStreamScanner()
            _ = try onDevice { try reader.read(Int(found[index].file.prefixBytes ?? 0)) }
            var bytes: UInt64 = 0
            var chunk = [UInt8](repeating: 0, count: TapeFormat.recordSize)
            while true {
                let count = try onDevice { try chunk.withUnsafeMutableBytes { try reader.read(into: $0) } }
                if count == 0 { break }
                chunk.withUnsafeBytes { scanner.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                bytes += UInt64(count)
            }
            found[index].file.bytes = bytes
            // A volume holding its archive's end-of-archive blocks is the last one; one that
            // stops in the middle either continues on another tape or was cut by a killed
            // writer, and its archive stays incomplete until a later volume completes it.
            found[index].file.last = scanner.endOfArchive != nil
        }
        let imported = label.serverId != state.serverId
        var fileRecords = [TapeFileRecord(file: 0, kind: .label)] + found.map(\.file)
        if let catalog { fileRecords += catalog.files.filter { $0.kind == .catalog }.map { TapeFileRecord(file: $0.file, kind: .catalog) } }
        fileRecords.sort { $0.file < $1.file }
        let finalState = try context.store.update { state -> ProviderState in
            var record = state.tapes[barcode] ?? tape
            record.uuid = label.uuid
            record.pool = label.pool
            record.mediaSet = label.mediaSet
            record.sequence = label.sequence
            record.labelServer = label.serverId
            record.encryption = label.encryption
            record.files = fileRecords
            record.appendAt = files
            if imported {
                record.state = .imported
            } else if record.state == .free || record.state == .unrecognised || record.state == .imported {
                record.state = found.isEmpty ? .free : .offsiteReady
            }
            state.tapes[barcode] = record
            for item in found where item.file.last != nil {
                state.foundVolumes[item.description.archive] = item.description
            }
            assemble(&state)
            return state
        }
        state = finalState
        let here = Set(found.map(\.description.archive))
        let complete = state.archives.filter { here.contains($0.description.name) }.map(\.description)
        let incomplete = here.subtracting(complete.map(\.name)).sorted()
        var reply: [String: JSONValue] = ["barcode": .string(barcode), "state": .string(state.tapes[barcode]?.state.rawValue ?? "?"),
                                          "label": try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(label))]
        reply["archives"] = try JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(complete))
        reply["incomplete"] = .array(incomplete.map { .string($0) })
        return .object(reply)
    }

    /// Turns volumes found on tapes into archives once every volume of one is known.
    static func assemble(_ state: inout ProviderState) {
        for (name, description) in state.foundVolumes where state.archive(name) == nil {
            var volumes: [VolumeRecord] = []
            var last = false
            for tape in state.tapes.values {
                for file in tape.files where file.kind == .volume && file.archive == name {
                    guard let sequence = file.sequence, let bytes = file.bytes else { continue }
                    volumes.append(VolumeRecord(barcode: tape.barcode, file: file.file, sequence: sequence, bytes: bytes,
                                                prefixBytes: file.prefixBytes ?? 0, archiveOffset: file.archiveOffset ?? 0))
                    if file.last == true { last = true }
                }
            }
            volumes.sort { $0.sequence < $1.sequence }
            guard last, volumes.enumerated().allSatisfy({ $0.offset + 1 == $0.element.sequence }) else { continue }
            let bytes = volumes.reduce(0) { $0 + $1.bytes }
            var archive = ArchiveDescription(name: name, datasource: description.datasource, rp: description.rp, time: description.time,
                                             expires: description.expires, bytes: bytes,
                                             location: volumes.map { "\($0.barcode) file \($0.file)" }.joined(separator: ", "))
            archive.datasourceName = description.datasourceName
            archive.encryption = description.encryption
            archive.summary = description.summary
            archive.volumes = volumes.map { .object(["medium": .string($0.barcode), "file": .number(Double($0.file)),
                                                     "bytes": .number(Double($0.bytes)), "sequence": .number(Double($0.sequence))]) }
            state.archives.append(ArchiveRecord(description: archive, pool: description.pool, colocate: description.colocate,
                                                retentionDays: Int(max(0, min(40_000, description.expires.timeIntervalSince(description.time) / 86_400))),
                                                volumes: volumes))
            state.foundVolumes[name] = nil
        }
    }
}
