import Foundation
import Host
import PluginAPI

/// `dpm tape …`: libraries, tapes and long-term copies on tape. Library and tape
/// administration goes to the tape-library provider's `command` verbs; copies and
/// recatalog go through the host, which records long-term copies in the catalog.
enum TapeCommands {
    static let all = [libraryAdd, libraryList, libraryInventory, list, label, erase, markFree, move, insert, export, map, fault, recatalog, copy]
    static let tier = "tape-library"

    /// Runs one provider verb and prints its reply (JSON, or `text` of it).
    static func run(_ invocation: Invocation, _ verb: String, _ args: [String: JSONValue], text: (JSONValue, Output) -> Void) throws -> Int32 {
        let reply = try invocation.registry().tier(tier).command(verb, .object(args))
        if invocation.json { try invocation.output.emit(reply) } else { text(reply, invocation.output) }
        return 0
    }

    static func int(_ invocation: Invocation, _ name: String) throws -> JSONValue? {
        guard let text = invocation.arguments.value(name) else { return nil }
        guard let value = Int(text), value >= 0 else { throw HostError(.usage, "--\(name) takes a whole number, not '\(text)'") }
        return .number(Double(value))
    }

    static let libraryAdd = CommandDefinition(
        path: ["tape", "library", "add"], summary: "Add a tape library: a virtual one (files) or a real SCSI tape drive and changer.",
        arguments: "NAME",
        details: """
        A virtual tape library keeps its cartridges as files under --dir and behaves like a real one
        (records, filemarks, early warning and end of tape, write protection, barcodes, mail slots):
          dpm tape library add vtl1 --kind vtl --dir /srv/vtl --slots 24 --mail-slots 2 --drives 2 --capacity 100G
        Naming the folder of an existing virtual library attaches it (for a new data directory).
        A real library: dpm tape library add lib1 --kind st --drive /dev/nst0 [--drive /dev/nst1] [--changer /dev/sg3]
        """,
        options: [
            OptionSpec(name: "kind", value: "vtl|st", help: "a virtual tape library, or Linux st drives (default vtl)"),
            OptionSpec(name: "dir", value: "DIR", help: "vtl: the folder of its cartridges and state"),
            OptionSpec(name: "slots", value: "N", help: "vtl: storage slots (default 8)"),
            OptionSpec(name: "mail-slots", value: "N", help: "vtl: import/export slots (default 1)"),
            OptionSpec(name: "drives", value: "N", help: "vtl: drives (default 1)"),
            OptionSpec(name: "capacity", value: "SIZE", help: "vtl: bytes per cartridge, e.g. 100G (default 1G)"),
            OptionSpec(name: "early-warning", value: "SIZE", help: "vtl: early warning this far before the end (default 2M)"),
            OptionSpec(name: "drive", value: "DEVICE", help: "st: a non-rewinding tape device (repeat)", repeatable: true),
            OptionSpec(name: "changer", value: "DEVICE", help: "st: the medium changer's SCSI generic device"),
        ],
        positionals: 1...1
    ) { invocation in
        let arguments = invocation.arguments
        var args: [String: JSONValue] = ["name": .string(invocation.positionals[0]), "kind": .string(arguments.value("kind") ?? "vtl")]
        if let dir = arguments.value("dir") {
            args["dir"] = .string(dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir)
        }
        for (option, key) in [("slots", "slots"), ("mail-slots", "mail_slots"), ("drives", "drives")] {
            if let value = try int(invocation, option) { args[key] = value }
        }
        for (option, key) in [("capacity", "capacity"), ("early-warning", "early_warning")] {
            if let text = arguments.value(option) { args[key] = .number(Double(try GroupEditor.size(text))) }
        }
        if !arguments.all("drive").isEmpty { args["drives"] = .array(arguments.all("drive").map { .string($0) }) }
        if let changer = arguments.value("changer") { args["changer"] = .string(changer) }
        return try run(invocation, "library.add", args) { reply, out in
            out.line("library \(invocation.positionals[0]) ready" + (reply["summary"]?.stringValue.map { ": \($0)" } ?? ""))
        }
    }

    static let libraryList = CommandDefinition(path: ["tape", "library", "list"], summary: "List the tape libraries.", arguments: "") { invocation in
        try run(invocation, "library.list", [:]) { reply, out in
            let libraries = reply["libraries"]?.arrayValue ?? []
            out.table(["NAME", "KIND", "DRIVES", "SLOTS", "WHERE"], libraries.map {
                [$0["name"]?.stringValue ?? "", $0["kind"]?.stringValue ?? "", cell($0["drives"]), cell($0["slots"]),
                 $0["dir"]?.stringValue ?? $0["changer"]?.stringValue ?? ""]
            })
        }
    }

    static let libraryInventory = CommandDefinition(
        path: ["tape", "library", "inventory"], summary: "Show a library's drives, slots and mail slots, with barcodes.", arguments: "[NAME]",
        positionals: 0...1
    ) { invocation in
        var args: [String: JSONValue] = [:]
        if let name = invocation.positionals.first { args["library"] = .string(name) }
        return try run(invocation, "library.inventory", args) { reply, out in
            let elements = reply["elements"]?.arrayValue ?? []
            let counters = Dictionary((reply["cartridges"]?.arrayValue ?? []).compactMap { cartridge in
                cartridge["barcode"]?.stringValue.map { ($0, cartridge) } }) { first, _ in first }
            out.table(["ELEMENT", "STATE", "BARCODE", "TAPE STATE", "USED", "READ", "WRITTEN"], elements.map { element in
                let counter = element["barcode"]?.stringValue.flatMap { counters[$0] }
                func bytes(_ key: String) -> String { (counter?[key]?.numberValue).map { ByteFormat.string(UInt64($0)) } ?? "" }
                return [element["element"]?.stringValue ?? "", (element["full"]?.boolValue ?? false) ? "full" : "empty",
                        element["barcode"]?.stringValue ?? "", element["tape_state"]?.stringValue ?? "",
                        bytes("used_bytes"), bytes("bytes_read"), bytes("bytes_written")]
            })
        }
    }

    static let list = CommandDefinition(path: ["tape", "list"], summary: "List the tapes: state, pool, use, expiry, where they are.", arguments: "") { invocation in
        try run(invocation, "tape.list", [:]) { reply, out in
            let tapes = reply["tapes"]?.arrayValue ?? []
            out.table(["BARCODE", "STATE", "POOL", "SET", "FILES", "WRITTEN", "EXPIRES", "LOCATION"], tapes.map {
                [$0["barcode"]?.stringValue ?? "", $0["state"]?.stringValue ?? "", $0["pool"]?.stringValue ?? "",
                 mediaSet($0),
                 cell($0["files"]), ($0["bytes_written"]?.numberValue).map { ByteFormat.string(UInt64($0)) } ?? "",
                 $0["furthest_expiry"]?.stringValue ?? "", $0["location"]?.stringValue ?? ""]
            })
        }
    }

    static func tapeVerb(_ name: String, _ verb: String, _ summary: String, options: [OptionSpec] = [],
                         extra: @escaping (Invocation) throws -> [String: JSONValue] = { _ in [:] }) -> CommandDefinition {
        CommandDefinition(path: ["tape", name], summary: summary, arguments: "BARCODE", options: options, positionals: 1...1) { invocation in
            var args = try extra(invocation)
            args["barcode"] = .string(invocation.positionals[0])
            return try run(invocation, verb, args) { reply, out in
                out.line(reply["message"]?.stringValue ?? "\(invocation.positionals[0]): \(reply["state"]?.stringValue ?? "done")")
            }
        }
    }

    static let label = tapeVerb("label", "tape.label", "Write a new label on a tape (it becomes free; everything on it is lost).",
                                options: [OptionSpec(name: "pool", value: "POOL", help: "the media pool it joins")]) { invocation in
        invocation.arguments.value("pool").map { ["pool": .string($0)] } ?? [:]
    }
    static let erase = tapeVerb("erase", "tape.erase", "Erase a tape completely (its copies are forgotten).")
    static let markFree = tapeVerb("mark-free", "tape.mark-free", "Mark a tape free for reuse (an imported or expired tape, for example).")
    static let move = tapeVerb("move", "tape.move", "Move a tape to a slot, a mail slot or a drive.",
                               options: [OptionSpec(name: "to", value: "slot:N|mail:N|drive:N", help: "where to (required)")]) { invocation in
        guard let to = invocation.arguments.value("to") else { throw HostError(.usage, "say where: --to slot:N, mail:N or drive:N") }
        return ["to": .string(to)]
    }
    static let insert = tapeVerb("insert", "vtl.insert", "Virtual library: insert a new blank cartridge with this barcode.",
                                 options: [OptionSpec(name: "library", value: "NAME", help: "the virtual library (default: the first)"),
                                           OptionSpec(name: "slot", value: "N", help: "into this storage slot"),
                                           OptionSpec(name: "mail-slot", value: "N", help: "into this mail slot (the default: the first free)")]) { invocation in
        var args: [String: JSONValue] = [:]
        if let library = invocation.arguments.value("library") { args["library"] = .string(library) }
        if let slot = try int(invocation, "slot") { args["slot"] = slot }
        if let slot = try int(invocation, "mail-slot") { args["mail"] = slot }
        return args
    }

    static let export = tapeVerb("export", "vtl.export", "Virtual library: copy one tape file to a file, as `dd` from a drive would (for tar).",
                                 options: [OptionSpec(name: "file", value: "N", help: "the tape file number (required; 0 is the label)"),
                                           OptionSpec(name: "to", value: "PATH", help: "where to write it (required)"),
                                           OptionSpec(name: "library", value: "NAME", help: "the virtual library (default: the first)")]) { invocation in
        guard let file = try int(invocation, "file"), let to = invocation.arguments.value("to") else {
            throw HostError(.usage, "say which file and where: --file N --to PATH")
        }
        var args: [String: JSONValue] = ["file": file, "path": .string(to.hasPrefix("/") ? to : FileManager.default.currentDirectoryPath + "/" + to)]
        if let library = invocation.arguments.value("library") { args["library"] = .string(library) }
        return args
    }

    static let map = tapeVerb("map", "vtl.map", "Virtual library: list a cartridge's files with their first blocks, records and bytes.",
                              options: [OptionSpec(name: "library", value: "NAME", help: "the virtual library (default: the first)")]) { invocation in
        invocation.arguments.value("library").map { ["library": .string($0)] } ?? [:]
    }

    static let fault = CommandDefinition(
        path: ["tape", "library", "fault"], summary: "Virtual library: inject or clear a device fault (for drills and tests).", arguments: "NAME",
        options: [OptionSpec(name: "barcode", value: "BARCODE", help: "the cartridge of a read error"),
                  OptionSpec(name: "read-error-at-block", value: "N", help: "reads of block N (counted from the tape's start) fail with EIO"),
                  OptionSpec(name: "drive", value: "N", help: "the drive to take offline or online"),
                  OptionSpec(name: "offline", value: "on|off", help: "drive offline (on) or back online (off)"),
                  OptionSpec(name: "clear", value: nil, help: "clear every fault")],
        positionals: 1...1
    ) { invocation in
        var args: [String: JSONValue] = ["library": .string(invocation.positionals[0])]
        if let barcode = invocation.arguments.value("barcode") { args["barcode"] = .string(barcode) }
        if let block = try int(invocation, "read-error-at-block") { args["read_error_at_block"] = block }
        if let drive = try int(invocation, "drive") { args["drive"] = drive }
        if let offline = invocation.arguments.value("offline") { args["offline"] = .bool(offline == "on") }
        if invocation.arguments.has("clear") { args["clear"] = .bool(true) }
        return try run(invocation, "vtl.fault", args) { reply, out in out.line(reply["message"]?.stringValue ?? "fault set") }
    }

    static let recatalog = CommandDefinition(
        path: ["tape", "recatalog"], summary: "Rebuild the catalog of a tape from the tape alone (for example on a new server).",
        arguments: "BARCODE",
        details: "Reads the tape's label and catalog file, and lists its long-term copies as recoverable. A tape written by another server becomes imported: it is never overwritten until marked free.",
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let reply = try service.registry().tier(tier).command("tape.recatalog", .object(["barcode": .string(invocation.positionals[0])]))
        let archives = try JSONCoding.fromJSON([ArchiveDescription].self, reply["archives"] ?? .array([]))
        let copies = try service.recordRecataloged(archives, tier: tier)
        if invocation.json { try invocation.output.emit(["copies": copies]) } else {
            invocation.output.line("\(invocation.positionals[0]): \(copies.count) long-term copies recorded")
            for copy in copies { invocation.output.line("  \(copy.point.id) of \(copy.datasourceId) at \(copy.location)") }
        }
        return 0
    }

    static let copy = CommandDefinition(
        path: ["tape", "copy"], summary: "Copy a data source's newest recovery point to tape now (a long-term copy).", arguments: "DATASOURCE",
        details: """
        The copy is full and self-contained (its chunks, index and manifest), read from the disk store. It follows the
        data source's protection group (pool, library, drives, retention, compression, encryption); the options override.
        Encrypted copies need the passphrase (--passphrase-file, or the tiers.passphrase_file setting).
        """,
        options: [OptionSpec(name: "retention", value: "N{y|m|w}", help: "keep the copy this long (default: the group's, else 1y)"),
                  OptionSpec(name: "encrypt", value: "on|off", help: "encrypt the copy (default: the group's setting)"),
                  OptionSpec(name: "compress", value: "on|off", help: "compress the chunks (default: the group's setting, else on)"),
                  OptionSpec(name: "passphrase-file", value: "FILE", help: "the passphrase of encrypted copies")],
        positionals: 1...1
    ) { invocation in
        try TierCopyCommand.run(invocation, tier: tier)
    }

    /// "SET/SEQUENCE" of a tape in a media set, the set's id shortened.
    static func mediaSet(_ tape: JSONValue) -> String {
        guard let set = tape["media_set"]?.stringValue else { return "" }
        return "\(set.prefix(8))/\(cell(tape["sequence"]))"
    }

    static func cell(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        if let number = value.numberValue { return String(Int(number)) }
        if let array = value.arrayValue { return String(array.count) }
        return value.stringValue ?? value.description
    }
}
