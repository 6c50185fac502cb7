import Foundation
import PluginAPI

/// tape.list, tape.label, tape.erase, tape.mark-free and tape.move (see `TapeCommands`).
enum TapeTapeCommands {
    static func entry(_ tape: TapeRecord, state: ProviderState, location: String?) -> JSONValue {
        var object: [String: JSONValue] = [
            "barcode": .string(tape.barcode), "library": .string(tape.library), "state": .string(tape.state.rawValue),
            "encrypted": .bool(tape.encryption != nil), "files": .number(Double(tape.files.count)),
            "append_at": .number(Double(tape.appendAt)), "bytes_written": .number(Double(tape.bytesWritten)), "worm": .bool(tape.worm),
            "archives": .array(state.archives.filter { $0.volumes.contains { $0.barcode == tape.barcode } }.map { .string($0.description.name) }),
        ]
        object["pool"] = tape.pool.map { .string($0) } ?? .null
        object["media_set"] = tape.mediaSet.map { .string($0) } ?? .null
        object["sequence"] = tape.sequence.map { .number(Double($0)) } ?? .null
        object["location"] = location.map { .string($0) } ?? .null
        object["key_fingerprint"] = tape.fingerprint.map { .string($0) } ?? .null
        object["furthest_expiry"] = tape.furthestExpiry.map { .string(ISOTime.string($0)) } ?? .null
        object["label_server"] = tape.labelServer.map { .string($0) } ?? .null
        return .object(object)
    }

    static func list(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let libraryFilter = try args.string("library")
        let pool = try args.string("pool")
        let state = try context.store.load()
        var locations: [String: String] = [:]
        for library in state.libraries where libraryFilter == nil || library.name == libraryFilter {
            if let device = try? context.device(library), let inventory = try? device.changer.inventory() {
                for entry in inventory.entries { if let barcode = entry.barcode { locations[barcode] = entry.element.description } }
            }
        }
        let tapes = state.tapes.values.filter { (libraryFilter == nil || $0.library == libraryFilter) && (pool == nil || $0.pool == pool) }
            .sorted { $0.barcode < $1.barcode }
        return .object(["tapes": .array(tapes.map { entry($0, state: state, location: locations[$0.barcode]) })])
    }

    static func single(_ barcode: String, context: TapeContext) throws -> JSONValue {
        let state = try context.store.load()
        let tape = try state.tape(barcode)
        let location = try? context.device(try state.library(tape.library)).changer.inventory().location(of: barcode)?.description
        return entry(tape, state: state, location: location)
    }

    static func label(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let barcode = try args.requiredString("barcode")
        let pool = try args.requiredString("pool")
        let state = try context.store.load()
        let tape = try state.tape(barcode)
        guard [.free, .expired].contains(tape.state) else {
            throw PluginError(.invalid, "tape \(barcode) is \(tape.state.rawValue); only a free or expired tape can be labelled (run `dpm tape mark-free \(barcode)` first if its data is no longer needed)")
        }
        let device = try context.device(try state.library(tape.library))
        let mount = try TapeMount.mount(barcode, library: device, drives: nil, deadline: context.deadline)
        defer { try? mount.release() }
        _ = try TapeAllocation.label(tape, drive: try mount.open(), context: context, pool: pool, encryption: nil)
        try mount.release()
        return try single(barcode, context: context)
    }

    static func erase(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let barcode = try args.requiredString("barcode")
        let state = try context.store.load()
        let tape = try state.tape(barcode)
        if tape.claim?.isLive == true { throw PluginError(.transient, "tape \(barcode) is being written by process \(tape.claim?.pid ?? 0); try again when the job ends") }
        let device = try context.device(try state.library(tape.library))
        let mount = try TapeMount.mount(barcode, library: device, drives: nil, deadline: context.deadline)
        defer { try? mount.release() }
        let drive = try mount.open()
        try onDevice { try drive.rewind(); try drive.erase() }
        try mount.release()
        try forget(barcode, context: context)
        return try single(barcode, context: context)
    }

    static func markFree(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let barcode = try args.requiredString("barcode")
        let tape = try context.store.load().tape(barcode)
        if tape.state == .cleaning { throw PluginError(.invalid, "tape \(barcode) is a cleaning cartridge") }
        if tape.claim?.isLive == true { throw PluginError(.transient, "tape \(barcode) is being written; try again when the job ends") }
        try forget(barcode, context: context)
        return try single(barcode, context: context)
    }

    /// Makes a tape free and forgets the archives that had a volume on it.
    static func forget(_ barcode: String, context: TapeContext) throws {
        try context.store.update { state in
            guard var tape = state.tapes[barcode] else { return }
            state.archives.removeAll { $0.volumes.contains { $0.barcode == barcode } }
            tape.state = .free
            tape.files = []
            tape.appendAt = 0
            tape.colocated = false
            tape.firstWritten = nil
            tape.firstRetentionDays = nil
            tape.furthestExpiry = nil
            tape.encryption = nil
            tape.bytesWritten = 0
            state.tapes[barcode] = tape
        }
    }

    static func move(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let barcode = try args.requiredString("barcode")
        let targetText = try args.requiredString("to")
        guard let target = ChangerElement.parse(targetText) else { throw args.invalid("to", "must be slot:N, mail:N or drive:N") }
        let state = try context.store.load()
        let library = try state.tapes[barcode].map { try state.library($0.library) } ?? state.library(try args.string("library"))
        let device = try context.device(library)
        let inventory = try onDevice { try device.changer.inventory() }
        guard let source = inventory.location(of: barcode) else {
            throw PluginError(.notFound, "tape \(barcode) is not in library \(library.name); see `dpm tape library inventory \(library.name)`")
        }
        try onDevice { try device.changer.move(from: source, to: target) }
        return .object(["barcode": .string(barcode), "from": .string(source.description), "to": .string(target.description)])
    }
}
