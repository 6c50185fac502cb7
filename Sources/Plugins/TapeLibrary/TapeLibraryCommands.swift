import Foundation
import PluginAPI

/// library.add, library.list and library.inventory (see `TapeCommands`).
enum TapeLibraryCommands {
    static func add(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let name = try args.requiredString("name")
        guard TapeFormat.safeName(name) == name else { throw args.invalid("name", "may hold only letters, digits, '-', '_' and '.'") }
        let kind = try args.string("kind") ?? "vtl"
        if try context.store.load().libraries.contains(where: { $0.name == name }) {
            throw PluginError(.invalid, "a tape library named \(name) already exists; see `dpm tape library list`")
        }
        var created = false
        let record: LibraryRecord
        switch kind {
        case "vtl":
            let dir = (try args.requiredString("dir") as NSString).standardizingPath
            if !FileManager.default.fileExists(atPath: dir + "/library.json") {
                let slots = try args.requiredInt("slots")
                let mail = try args.int("mail_slots") ?? 1
                let drives = try args.int("drives") ?? 1
                guard let capacity = try args.size("capacity") else { throw args.invalid("capacity", "is required (bytes, or e.g. 64M)") }
                let warning = try args.size("early_warning") ?? 2 << 20
                guard (0...10_000).contains(slots), (0...100).contains(mail), (1...64).contains(drives) else {
                    throw PluginError(.invalid, "library.add: slots 0-10000, mail_slots 0-100 and drives 1-64 (got \(slots), \(mail), \(drives))")
                }
                guard capacity > warning + (1 << 20) else {
                    throw PluginError(.invalid, "library.add: capacity \(capacity) must exceed early_warning \(warning) by at least 1 MiB")
                }
                let config = VirtualLibraryConfig(uuid: UUID().uuidString.lowercased(), name: name, slots: slots, mailSlots: mail,
                                                  drives: drives, capacity: capacity, earlyWarning: warning)
                _ = try onDevice { try VirtualLibrary.create(directory: dir, config: config) }
                created = true
            } else {
                _ = try onDevice { try VirtualLibrary(directory: dir) }
            }
            record = LibraryRecord(name: name, kind: "vtl", dir: dir, driveDevices: nil, changer: nil, added: Date())
        case "st":
            guard let drives = try args.strings("drives"), !drives.isEmpty else { throw args.invalid("drives", "lists the /dev/nstN nodes") }
            record = LibraryRecord(name: name, kind: "st", dir: nil, driveDevices: drives, changer: try args.string("changer"), added: Date())
        default:
            throw args.invalid("kind", "must be vtl or st")
        }
        try context.store.update { $0.libraries.append(record) }
        let device = try context.device(record)
        try TapeInventory.refresh(context: context, library: record, device: device, importMail: false)
        let tapes = try TapeTapeCommands.list(CommandArguments(CommandRequest(verb: "tape.list", args: .object(["library": .string(name)]))),
                                              context: context)
        return .object(["library": try entry(record), "created": .bool(created), "tapes": tapes["tapes"] ?? .array([])])
    }

    static func entry(_ record: LibraryRecord) throws -> JSONValue {
        var object: [String: JSONValue] = ["name": .string(record.name), "kind": .string(record.kind)]
        if let dir = record.dir {
            object["dir"] = .string(dir)
            if let library = try? VirtualLibrary(directory: dir) {
                object["slots"] = .number(Double(library.config.slots))
                object["mail_slots"] = .number(Double(library.config.mailSlots))
                object["drives"] = .number(Double(library.config.drives))
                object["capacity"] = .number(Double(library.config.capacity))
                object["early_warning"] = .number(Double(library.config.earlyWarning))
            }
        }
        if let drives = record.driveDevices { object["drives"] = .array(drives.map { .string($0) }) }
        if let changer = record.changer { object["changer"] = .string(changer) }
        return .object(object)
    }

    static func list(context: TapeContext) throws -> JSONValue {
        .object(["libraries": .array(try context.store.load().libraries.map(entry))])
    }

    static func inventory(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let state = try context.store.load()
        let record = try state.library(try args.string("library"))
        let device = try context.device(record)
        try TapeInventory.refresh(context: context, library: record, device: device, importMail: false)
        let tapes = try context.store.load().tapes
        let inventory = try onDevice { try device.changer.inventory() }
        var elements: [JSONValue] = []
        for entry in inventory.entries {
            var object: [String: JSONValue] = ["element": .string(entry.element.description), "full": .bool(entry.full)]
            if let barcode = entry.barcode {
                object["barcode"] = .string(barcode)
                if let tape = tapes[barcode] { object["tape_state"] = .string(tape.state.rawValue) }
            }
            if let from = entry.loadedFrom { object["loaded_from"] = .number(Double(from)) }
            elements.append(.object(object))
        }
        var reply: [String: JSONValue] = ["library": .string(record.name), "elements": .array(elements)]
        if let virtual = device as? VirtualLibraryDevice {
            reply["cartridges"] = .array(try inventory.entries.compactMap(\.barcode).sorted().map { barcode in
                let meta = CartridgeMeta.load(directory: virtual.library.cartridgeDirectory, barcode: barcode)
                let cartridge = try onDevice { try virtual.library.cartridge(barcode) }
                var object: [String: JSONValue] = [
                    "barcode": .string(barcode), "records_read": .number(Double(meta.recordsRead)),
                    "bytes_read": .number(Double(meta.bytesRead)), "records_written": .number(Double(meta.recordsWritten)),
                    "bytes_written": .number(Double(meta.bytesWritten)), "loads": .number(Double(meta.loads)),
                    "write_protected": .bool(meta.writeProtected), "blocks": .number(Double(cartridge.blockCount)),
                    "files": .number(Double(cartridge.filemarks.count)), "used_bytes": .number(Double(cartridge.usedBytes)),
                ]
                object["read_error_at_block"] = meta.readErrorAtBlock.map { .number(Double($0)) } ?? .null
                return .object(object)
            })
        }
        return .object(reply)
    }
}
