// dpm-restore-standalone: restores a recovery point from a dpm store's files alone (no
// catalog, no dpm code), written from the format documentation as proof that the on-disk
// format is self-describing.
import Foundation
import Glibc

let usage = """
    usage: dpm-restore-standalone STORE_DIR --list
           dpm-restore-standalone STORE_DIR (--point points/DS/RP.dpmidx | --latest DATASOURCE_ID)
                                  [--stream N] [--key-file FILE] [--output FILE]

    Reads a dpm store (DATA/store) without the catalog or dpm itself.
      --list            list every recovery point index under STORE_DIR/points
      --point PATH      the index to restore (relative to STORE_DIR, or absolute)
      --latest ID       the most recent recovery point of data source ID
      --stream N        the stream to restore (default 0)
      --key-file FILE   the master key file of an encrypted store
      --output FILE     the file to write (sparse); default: standard output
      --help            show this help
    Exit status: 0 done, 1 damage or another failure (the message names the file), 2 usage error.
    """

struct Options {
    var store: String?
    var list = false
    var point: String?
    var latest: String?
    var stream = 0
    var keyFile: String?
    var output: String?
    var help = false

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        func value(_ option: String) throws -> String {
            guard let next = rest.popFirst() else { throw Failure.usage("\(option) needs a value") }
            return next
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--help", "-h": help = true
            case "--list": list = true
            case "--point": point = try value(argument)
            case "--latest": latest = try value(argument)
            case "--stream":
                let text = try value(argument)
                guard let number = Int(text), number >= 0 else { throw Failure.usage("--stream needs a stream number, not '\(text)'") }
                stream = number
            case "--key-file": keyFile = try value(argument)
            case "--output": output = try value(argument)
            default:
                guard !argument.hasPrefix("-") || argument == "-" else { throw Failure.usage("unknown option \(argument)") }
                guard store == nil else { throw Failure.usage("unexpected argument \(argument); give one STORE_DIR") }
                store = argument
            }
        }
        if help { return }
        guard store != nil else { throw Failure.usage("missing STORE_DIR") }
        let modes = [list, point != nil, latest != nil].filter { $0 }.count
        guard modes == 1 else { throw Failure.usage("give exactly one of --list, --point and --latest") }
        guard !list || (output == nil && stream == 0) else { throw Failure.usage("--list takes no --output or --stream") }
    }
}

/// Prints every index under `points/`; damaged ones are reported and make the exit status 1.
func list(_ store: Store) throws -> Int32 {
    var status: Int32 = 0
    for path in try store.indexPaths() {
        let relative = String(path.dropFirst(store.directory.count + 1))
        do {
            let index = try IndexFile(path: path)
            print("\(relative)\n  datasource \(index.text("datasource"))  rp \(index.text("rp"))  time \(index.text("time"))"
                  + "  kind \(index.text("kind"))  consistency \(index.text("consistency"))")
            for (number, stream) in index.streams.enumerated() {
                print("  stream \(number): \(stream.name), \(stream.size) bytes")
            }
        } catch let failure as Failure {
            fputs("dpm-restore-standalone: \(failure.message)\n", stderr)
            status = 1
        }
    }
    return status
}

/// The index of the most recent recovery point of a data source: the latest manifest time
/// (milliseconds; older stores wrote whole seconds); ties are broken by `parent_rp` (a child
/// is later).
func latestIndex(of datasource: String, in store: Store) throws -> IndexFile {
    let folder = store.directory + "/points/" + Store.directoryName(forDataSource: datasource)
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let whole = ISO8601DateFormatter()
    var candidates: [(index: IndexFile, time: Date)] = []
    for path in try store.indexPaths() where path.hasPrefix(folder + "/") {
        let index = try IndexFile(path: path)
        guard index.text("datasource") == datasource else {
            throw Failure.damage("recovery point index \(path): belongs to data source \(index.text("datasource")), not \(datasource)")
        }
        guard let time = fractional.date(from: index.text("time")) ?? whole.date(from: index.text("time")) else {
            throw Failure.damage("recovery point index \(path): manifest time '\(index.text("time"))' is not ISO 8601")
        }
        candidates.append((index, time))
    }
    guard let newest = candidates.map(\.time).max() else {
        throw Failure.damage("no recovery point of data source \(datasource) under \(folder)")
    }
    let tied = candidates.filter { $0.time == newest }.map(\.index)
    let parents = Set(tied.compactMap { $0.manifest["parent_rp"] as? String })
    let latest = tied.filter { !parents.contains($0.text("rp")) }
    guard latest.count == 1 else {
        throw Failure.damage("recovery points \(latest.map { $0.text("rp") }.sorted().joined(separator: ", ")) of \(datasource) share "
                             + "the latest time \(tied[0].text("time")) and their indexes do not order them; choose one with --point")
    }
    return latest[0]
}

func restore(_ options: Options, store: Store) throws {
    let index: IndexFile
    if let latest = options.latest {
        index = try latestIndex(of: latest, in: store)
    } else {
        let point = options.point!
        index = try IndexFile(path: point.hasPrefix("/") ? point : store.directory + "/" + point)
    }
    guard store.id.isEmpty || index.text("store_id") == store.id else {
        throw Failure.damage("recovery point index \(index.path): belongs to store \(index.text("store_id")), not \(store.id)")
    }
    guard options.stream < index.streams.count else {
        throw Failure.damage("recovery point index \(index.path): has \(index.streams.count) stream(s); there is no stream \(options.stream)")
    }
    let stream = index.streams[options.stream]
    let output = try Output(path: options.output, size: stream.size)
    do {
        var offset: UInt64 = 0
        for entry in stream.entries {
            if entry.flag == .data {
                do {
                    try output.write(try store.chunk(entry.digest, length: Int(entry.length)), at: offset)
                } catch let failure as Failure where failure.message.hasPrefix("chunk ") {
                    throw Failure.damage("\(failure.message) (stream \(options.stream) offset \(offset) of \(index.path))")
                }
            }
            offset += UInt64(entry.length)
        }
        try output.finish(size: stream.size)
    } catch {
        output.abandon()
        throw error
    }
}

signal(SIGPIPE, SIG_IGN)
do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    if options.help {
        print(usage)
        exit(0)
    }
    let store = try Store(directory: options.store!, keyFile: options.keyFile, needKey: !options.list)
    if options.list { exit(try list(store)) }
    try restore(options, store: store)
    exit(0)
} catch let failure as Failure {
    fputs("dpm-restore-standalone: \(failure.message)\n", stderr)
    if failure.status == 2 { fputs("Try 'dpm-restore-standalone --help'.\n", stderr) }
    exit(failure.status)
} catch {
    fputs("dpm-restore-standalone: \(error)\n", stderr)
    exit(1)
}
