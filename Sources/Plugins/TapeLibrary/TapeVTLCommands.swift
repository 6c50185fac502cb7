import Foundation
import Glibc
import PluginAPI

/// vtl.insert, vtl.fault, vtl.export and vtl.map: the virtual library's operator actions,
/// fault knobs and views of a cartridge's raw contents (see `TapeCommands`).
enum TapeVTLCommands {
    static func library(_ args: CommandArguments, context: TapeContext) throws -> (LibraryRecord, VirtualLibrary) {
        let record = try context.store.load().library(try args.string("library"))
        guard record.kind == "vtl", let dir = record.dir else {
            throw PluginError(.invalid, "\(args.verb): library \(record.name) is not a virtual library")
        }
        return (record, try onDevice { try VirtualLibrary(directory: dir) })
    }

    static func insert(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let (record, library) = try library(args, context: context)
        let barcode = try args.requiredString("barcode")
        let element: ChangerElement
        if let slot = try args.int("slot") { element = .slot(slot) }
        else if let mail = try args.int("mail") { element = .mail(mail) }
        else if let first = try library.readElements().mail.firstIndex(where: { $0 == nil }) { element = .mail(first + 1) }
        else { throw args.invalid("slot", "or 'mail' is required (every mail slot is full)") }
        try onDevice { try library.insert(barcode: barcode, into: element) }
        if case .slot = element {
            // A new blank cartridge: free, no need to read it.
            var tape = TapeRecord(barcode: barcode, library: record.name, state: barcode.hasPrefix("CLN") ? .cleaning : .free)
            tape.worm = barcode.hasPrefix("W")
            try context.store.update { state in state.tapes[barcode] = tape }
        }
        return .object(["barcode": .string(barcode), "element": .string(element.description)])
    }

    static func fault(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let (_, library) = try library(args, context: context)
        if try args.bool("clear") == true {
            let elements = try library.readElements()
            for index in elements.drives.indices { try onDevice { try library.setDriveOffline(index, false) } }
            for barcode in (elements.slots + elements.mail + elements.drives.map(\.barcode)).compactMap({ $0 }) {
                try onDevice { try library.setMeta(barcode) { $0.readErrorAtBlock = nil; $0.writeProtected = false } }
            }
        }
        if let drive = try args.int("drive") {
            guard let offline = try args.bool("offline") else { throw args.invalid("offline", "is required with 'drive'") }
            try onDevice { try library.setDriveOffline(drive, offline) }
        }
        if let barcode = try args.string("barcode") {
            let block = try args.int("read_error_at_block")
            let clearBlock = args.values["read_error_at_block"] == .null
            let protect = try args.bool("write_protect")
            try onDevice {
                try library.setMeta(barcode) { meta in
                    if let block { meta.readErrorAtBlock = block } else if clearBlock { meta.readErrorAtBlock = nil }
                    if let protect { meta.writeProtected = protect }
                }
            }
        }
        let elements = try library.readElements()
        var faults: [JSONValue] = elements.drives.enumerated().filter(\.element.offline).map { .object(["drive": .number(Double($0.offset)), "offline": .bool(true)]) }
        for barcode in (elements.slots + elements.mail + elements.drives.map(\.barcode)).compactMap({ $0 }).sorted() {
            let meta = CartridgeMeta.load(directory: library.cartridgeDirectory, barcode: barcode)
            if meta.readErrorAtBlock != nil || meta.writeProtected {
                faults.append(.object(["barcode": .string(barcode), "write_protect": .bool(meta.writeProtected),
                                       "read_error_at_block": meta.readErrorAtBlock.map { .number(Double($0)) } ?? .null]))
            }
        }
        return .object(["library": .string(library.config.name), "faults": .array(faults)])
    }

    static func export(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let (_, library) = try library(args, context: context)
        let barcode = try args.requiredString("barcode")
        let number = try args.requiredInt("file")
        let path = try args.requiredString("path")
        let cartridge = try onDevice { try library.cartridge(barcode) }
        guard let first = cartridge.firstBlock(ofFile: number), first <= cartridge.blockCount else {
            throw PluginError(.notFound, "cartridge \(barcode) has no file \(number) (it has \(cartridge.filemarks.count) filemarks)")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PluginError(.io, "vtl.export: cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        var bytes: UInt64 = 0
        var records = 0
        var buffer = [UInt8](repeating: 0, count: TapeFormat.recordSize)
        var index = first
        while index < cartridge.blockCount {
            let block = try onDevice { try cartridge.block(index) }
            if block.isFilemark { break }
            if buffer.count < block.length { buffer = [UInt8](repeating: 0, count: block.length) }
            try onDevice { try buffer.withUnsafeMutableBytes { try cartridge.readRecord(block, into: $0) } }
            guard Glibc.write(fd, buffer, block.length) == block.length else {
                throw PluginError(.io, "vtl.export: writing \(path): \(String(cString: strerror(errno)))")
            }
            bytes += UInt64(block.length)
            records += 1
            index += 1
        }
        return .object(["path": .string(path), "bytes": .number(Double(bytes)), "records": .number(Double(records))])
    }

    static func map(_ args: CommandArguments, context: TapeContext) throws -> JSONValue {
        let (_, library) = try library(args, context: context)
        let barcode = try args.requiredString("barcode")
        let cartridge = try onDevice { try library.cartridge(barcode) }
        var files: [JSONValue] = []
        var file = 0
        while let first = cartridge.firstBlock(ofFile: file), first < cartridge.blockCount {
            let end = file < cartridge.filemarks.count ? cartridge.filemarks[file] : cartridge.blockCount
            var bytes = 0
            for index in first..<end { bytes += (try onDevice { try cartridge.block(index) }).length }
            files.append(.object(["file": .number(Double(file)), "first_block": .number(Double(first)),
                                  "records": .number(Double(end - first)), "bytes": .number(Double(bytes))]))
            file += 1
        }
        return .object(["barcode": .string(barcode), "files": .array(files), "blocks": .number(Double(cartridge.blockCount)),
                        "used_bytes": .number(Double(cartridge.usedBytes))])
    }
}
