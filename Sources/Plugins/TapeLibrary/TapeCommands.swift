import Foundation
import Glibc
import PluginAPI

/// The `command` verbs of the tape provider. The CLI (`dpm tape …`) maps its flags 1:1 onto
/// these arguments; every reply is a JSON object.
enum TapeCommands {
    static func run(_ request: CommandRequest, context: TapeContext) throws -> JSONValue {
        let args = CommandArguments(request)
        switch request.verb {
        // library.add {name, kind:"vtl", dir, slots, mail_slots (default 1), drives (default 1),
        //              capacity (bytes or "64M"), early_warning (default 2 MiB)}: creates a
        //   virtual library in dir, or attaches to the one already there (geometry arguments
        //   are then ignored), identifying its cartridges.
        // library.add {name, kind:"st", drives:["/dev/nst0",…], changer:"/dev/sgN"}.
        //   Reply: {"library": <library.list entry>, "created": bool, "tapes": [<tape.list entry>]}
        case "library.add": return try TapeLibraryCommands.add(args, context: context)
        // library.list {} → {"libraries":[{name, kind, dir, drives, slots, mail_slots,
        //   capacity, early_warning, changer}]}
        case "library.list": return try TapeLibraryCommands.list(context: context)
        // library.inventory {library (default: the first)} → {"library":…,
        //   "elements":[{"element":"drive:0"|"slot:1"|"mail:1","full":bool,"barcode":…,
        //   "loaded_from":N,"tape_state":…}],
        //   "cartridges":[{"barcode","records_read","bytes_read","records_written",
        //   "bytes_written","loads","write_protected","read_error_at_block","blocks","files",
        //   "used_bytes"}]} (cartridge counters for virtual libraries only)
        case "library.inventory": return try TapeLibraryCommands.inventory(args, context: context)
        // tape.list {library?, pool?} → {"tapes":[{barcode, library, state, pool, media_set,
        //   sequence, location, encrypted, key_fingerprint, archives:[names], files, append_at,
        //   bytes_written, furthest_expiry, label_server, worm}]}
        case "tape.list": return try TapeTapeCommands.list(args, context: context)
        // tape.label {barcode, pool} → the tape.list entry. Only for a tape holding no live
        //   archives (free, expired, or blank).
        case "tape.label": return try TapeTapeCommands.label(args, context: context)
        // tape.erase {barcode} → the tape.list entry (state free); its archives are forgotten.
        case "tape.erase": return try TapeTapeCommands.erase(args, context: context)
        // tape.mark-free {barcode} → the tape.list entry (state free, overwritten on next use;
        //   its archives are forgotten).
        case "tape.mark-free": return try TapeTapeCommands.markFree(args, context: context)
        // tape.move {barcode, to:"slot:N"|"mail:N"|"drive:N"} → {"barcode","from","to"}
        case "tape.move": return try TapeTapeCommands.move(args, context: context)
        // tape.recatalog {barcode} → {"barcode","state","label":{…},"archives":[ArchiveDescription],
        //   "incomplete":[names of archives that continue on tapes not yet recataloged]}
        case "tape.recatalog": return try TapeRecatalog.run(barcode: try args.requiredString("barcode"), context: context)
        // vtl.insert {library, barcode, slot:N | mail:N} → {"barcode","element"}: a new blank
        //   cartridge, as an operator would insert one (CLN… cleaning, W… WORM).
        case "vtl.insert": return try TapeVTLCommands.insert(args, context: context)
        // vtl.fault {library, barcode, read_error_at_block:N|null, write_protect:bool}
        //           {library, drive:N, offline:bool}
        //           {library, clear:true} (every fault knob of the library off)
        //   → {"library", "faults":[{…current knobs…}]}
        case "vtl.fault": return try TapeVTLCommands.fault(args, context: context)
        // vtl.export {library, barcode, file:N, path} → {"path","bytes","records"}: the raw
        //   bytes of tape file N, read from the cartridge (not through a drive, not counted).
        case "vtl.export": return try TapeVTLCommands.export(args, context: context)
        // vtl.map {library, barcode} → {"files":[{"file","first_block","records","bytes"}],
        //   "blocks","used_bytes"}
        case "vtl.map": return try TapeVTLCommands.map(args, context: context)
        default:
            throw PluginError(.unsupported, "tape-library has no command '\(request.verb)' (library.add, library.list, library.inventory, "
                              + "tape.list, tape.label, tape.erase, tape.mark-free, tape.move, tape.recatalog, vtl.insert, vtl.fault, vtl.export, vtl.map)")
        }
    }
}
