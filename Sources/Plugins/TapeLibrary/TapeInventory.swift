import Foundation
import Glibc
import PluginAPI

/// Keeps the state's tape list in step with what a library holds: cartridges it has never
/// seen are identified (cleaning by barcode; others by reading file 0), and, when asked,
/// unknown cartridges an operator put into a mail slot are moved into empty slots.
enum TapeInventory {
    static func refresh(context: TapeContext, library: LibraryRecord, device: TapeLibraryDevice, importMail: Bool) throws {
        var inventory = try onDevice { try device.changer.inventory() }
        let known = try context.store.load().tapes
        if importMail {
            for entry in inventory.mailSlots where entry.full {
                guard let barcode = entry.barcode, known[barcode] == nil,
                      let empty = inventory.slots.first(where: { !$0.full }) else { continue }
                try? device.changer.move(from: entry.element, to: empty.element)
                inventory = try onDevice { try device.changer.inventory() }
            }
        }
        for entry in inventory.entries where entry.full {
            guard let barcode = entry.barcode, known[barcode] == nil else { continue }
            if case .mail = entry.element { continue }
            guard let record = identify(barcode, library: library, device: device, context: context) else { continue }
            try context.store.update { state in
                if state.tapes[barcode] == nil { state.tapes[barcode] = record }
            }
        }
    }

    /// What an unknown cartridge is; nil when no drive is free to look.
    static func identify(_ barcode: String, library: LibraryRecord, device: TapeLibraryDevice, context: TapeContext) -> TapeRecord? {
        var record = TapeRecord(barcode: barcode, library: library.name, state: .free)
        record.worm = barcode.hasPrefix("W")
        if barcode.hasPrefix("CLN") { record.state = .cleaning; return record }
        let home = (try? device.changer.inventory())?.location(of: barcode)
        guard let mount = try? TapeMount.mount(barcode, library: device, drives: nil, deadline: Date()) else { return nil }
        defer {
            try? mount.release()
            if let home, home != .drive(mount.driveIndex) { try? device.changer.move(from: .drive(mount.driveIndex), to: home) }
        }
        guard let drive = try? mount.open(), (try? drive.rewind()) != nil else { return nil }
        let reader = TapeFileReader(drive: drive)
        let member = try? reader.firstMember()
        if reader.position == 0 { return record }  // blank
        guard let (header, _, content, _) = member, header.name == TapeFormat.labelPath,
              let label = try? JSONCoding.decode(TapeLabel.self, from: Data(content)), label.magic == TapeFormat.magic else {
            record.state = .unrecognised
            return record
        }
        record.state = .imported
        record.uuid = label.uuid
        record.pool = label.pool
        record.mediaSet = label.mediaSet
        record.sequence = label.sequence
        record.labelServer = label.serverId
        record.encryption = label.encryption
        return record
    }
}
