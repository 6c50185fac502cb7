import DPMPluginABI
import Foundation
@testable import PluginAPI
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// A state directory and a virtual library in a temporary folder, driven through the
/// provider's own types in this process.
final class TapeFixture {
    let root: String
    var state: String { root + "/state" }
    var vtl: String { root + "/vtl" }
    let context: TapeContext

    init(_ test: XCTestCase, slots: Int = 4, mail: Int = 1, drives: Int = 1, capacity: String = "64M",
         earlyWarning: String = "2M", barcodes: [String] = ["A00001L8", "A00002L8"], wait: Double = 1) throws {
        root = try TestSupport.temporaryDirectory(test)
        context = try TapeContext(stateDirectory: root + "/state", waitSeconds: wait)
        _ = try command("library.add", ["name": "lib1", "kind": "vtl", "dir": vtl, "slots": slots, "mail_slots": mail,
                                        "drives": drives, "capacity": capacity, "early_warning": earlyWarning])
        for (index, barcode) in barcodes.enumerated() {
            _ = try command("vtl.insert", ["library": "lib1", "barcode": barcode, "slot": index + 1])
        }
    }

    static func json(_ value: Any) -> JSONValue {
        switch value {
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .number(Double(number))
        case let number as Double: return .number(number)
        case let list as [Any]: return .array(list.map(json))
        case let object as [String: Any]: return .object(object.mapValues(json))
        default: return .null
        }
    }

    @discardableResult
    func command(_ verb: String, _ args: [String: Any] = [:]) throws -> JSONValue {
        try TapeCommands.run(CommandRequest(verb: verb, args: Self.json(args)), context: context)
    }

    /// A HostCall with an empty host table (the writer's finish does not call back).
    static let hostTable: UnsafeMutablePointer<dpm_host_api> = {
        let table = UnsafeMutablePointer<dpm_host_api>.allocate(capacity: 1)
        table.initialize(to: dpm_host_api())
        return table
    }()
    static var call: HostCall { HostCall(host: UnsafePointer(hostTable), call: nil) }

    static func request(_ name: String, pool: String? = nil, days: Int = 30, colocate: Bool? = nil, frequency: String? = nil,
                        encryption: JSONValue? = nil, expires: Date? = nil) -> ArchiveRequest {
        var request = ArchiveRequest(name: name, datasource: "ds-" + name, rp: "rp-" + name, time: Date(), retentionDays: days)
        request.pool = pool
        request.colocate = colocate
        request.frequency = frequency
        request.encryption = encryption
        request.expires = expires
        request.datasourceName = "vm " + name
        request.summary = .object(["kind": .string("full")])
        return request
    }

    /// Stores `bytes` in pieces of varying size.
    @discardableResult
    func store(_ request: ArchiveRequest, _ bytes: [UInt8]) throws -> ArchiveDescription {
        let writer = try TapeArchiveWriter(context: context, request: request)
        var offset = 0
        var piece = 1000
        while offset < bytes.count {
            let count = min(piece, bytes.count - offset)
            try bytes.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
            offset += count
            piece = piece * 7 % 300_001 + 1
        }
        return try writer.finish(commit: true, call: Self.call)
    }

    func read(_ name: String) throws -> [UInt8] { try Self.read(name, context: context) }

    /// Reads a whole archive back through `TapeArchiveReader`.
    static func read(_ name: String, context: TapeContext) throws -> [UInt8] {
        let reader = try TapeArchiveReader(context: context, name: name)
        defer { reader.close() }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 100_000)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if count == 0 { break }
            out += buffer[0..<count]
        }
        return out
    }

    /// Compiles Fixtures/tape_host.c (a minimal host over the C ABI) and returns its path and
    /// the leading arguments (plugin, state directory, wait seconds) for this fixture.
    func compileHost(wait: Int = 1) throws -> (String, [String]) {
        try TestSupport.require("cc")
        let binary = root + "/tape_host"
        let result = try TestSupport.run(["cc", "-Wall", "-Werror", "-I", TestSupport.abiInclude,
                                          TestSupport.repositoryRoot + "/Tests/TapeLibraryTests/Fixtures/tape_host.c", "-o", binary, "-ldl"])
        XCTAssertEqual(result.status, 0, result.output)
        let plugin = BuiltProducts.directory + "/libTapeLibrary.so"
        try Self.requirePlugin(plugin)
        return (binary, [plugin, state, String(wait)])
    }

    /// The built plugin library, for the tests that load it through the C ABI; missing is a
    /// failure in CI (CI=true) and a skip otherwise.
    static func requirePlugin(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("\(path) is missing; build with `swift build --build-tests`") }
        throw XCTSkip("\(path) is not built beside the tests")
    }

    func tapes() throws -> [String: [String: JSONValue]] {
        var out: [String: [String: JSONValue]] = [:]
        for tape in try command("tape.list")["tapes"]?.arrayValue ?? [] {
            if case .object(let object) = tape, let barcode = object["barcode"]?.stringValue { out[barcode] = object }
        }
        return out
    }

    func tapeState(_ barcode: String) throws -> String? { try tapes()[barcode]?["state"]?.stringValue }

    func export(_ barcode: String, file: Int) throws -> String {
        let path = root + "/\(barcode).\(file).tar"
        try command("vtl.export", ["library": "lib1", "barcode": barcode, "file": file, "path": path])
        return path
    }

    func cartridge(_ barcode: String) throws -> [String: JSONValue] {
        let inventory = try command("library.inventory", ["library": "lib1"])
        for item in inventory["cartridges"]?.arrayValue ?? [] {
            if case .object(let object) = item, object["barcode"]?.stringValue == barcode { return object }
        }
        throw XCTSkip("no cartridge \(barcode)")
    }
}

/// Archives the host would produce: a folder dpm/<rp>/{manifest.json,index.dpmidx,chunks/<sha256>.zst}
/// packed by GNU tar --format=posix.
enum HostArchive {
    /// Makes the folder under `root` and returns (the pax stream, chunk names).
    static func make(root: String, rp: String, chunks: [[UInt8]]) throws -> [UInt8] {
        let base = root + "/src-\(rp)"
        let directory = base + "/dpm/\(rp)"
        try FileManager.default.createDirectory(atPath: directory + "/chunks", withIntermediateDirectories: true)
        try Data("{\"rp\":\"\(rp)\"}".utf8).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        var index = ""
        for chunk in chunks {
            let plain = directory + "/plain.tmp"
            try Data(chunk).write(to: URL(fileURLWithPath: plain))
            let digest = try TestSupport.run(["sha256sum", plain]).output.prefix(64)
            index += digest + "\n"
            let result = try TestSupport.run(["zstd", "-q", "-1", "-f", plain, "-o", directory + "/chunks/\(digest).zst"])
            XCTAssertEqual(result.status, 0, result.output)
            try FileManager.default.removeItem(atPath: plain)
        }
        try Data(index.utf8).write(to: URL(fileURLWithPath: directory + "/index.dpmidx"))
        let out = root + "/\(rp).pax"
        let result = try TestSupport.run(["tar", "--format=posix", "-cf", out, "-C", base, "dpm"])
        XCTAssertEqual(result.status, 0, result.output)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
    }
}
