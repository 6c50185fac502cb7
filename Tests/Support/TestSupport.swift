import Foundation
import XCTest

/// Paths, tools and subprocess helpers shared by every test target.
public enum TestSupport {
    /// The repository root, found from this file's path.
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/Support/TestSupport.swift
        return url.path
    }()

    public static let abiInclude = repositoryRoot + "/Sources/PluginAPI/C/include"

    /// A fresh temporary directory, removed when the test ends.
    public static func temporaryDirectory(_ test: XCTestCase) throws -> String {
        let path = NSTemporaryDirectory() + "dpm-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Skips the test when `tool` is missing, except in CI (CI=true), where that fails it.
    public static func require(_ tool: String) throws {
        if which(tool) != nil { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("\(tool) is required in CI; .ci/run must install it")
            throw XCTSkip("\(tool) missing")
        }
        throw XCTSkip("\(tool) is not installed")
    }

    public static func which(_ tool: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs a program and returns its exit status and combined output.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: which(arguments[0]) ?? arguments[0])
        process.arguments = Array(arguments.dropFirst())
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Starts a long-running program in the background, its output appended to `log`, its
    /// standard input empty. The caller stops it (by PID) and waits for it.
    public static func launch(_ executable: String, _ arguments: [String], log: String,
                              currentDirectory: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Compiles a C plugin against the ABI header alone, as a plugin author would.
    public static func compilePlugin(source: String, output: String, defines: [String] = [], include: String? = nil) throws {
        try require("cc")
        let result = try run(["cc", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror", "-I", include ?? abiInclude]
                             + defines.map { "-D\($0)" } + [source, "-o", output])
        guard result.status == 0 else {
            XCTFail("cc failed on \(source): \(result.output)")
            throw CocoaError(.fileWriteUnknown)
        }
    }
}

/// The built `dpm` binary and plugin libraries, beside the test bundle.
public enum BuiltProducts {
    /// The directory holding the test bundle, `dpm` and the plugin `.so` files.
    public static let directory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: executable)
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.deletingLastPathComponent().path + "/dpm") {
            url.deleteLastPathComponent()
        }
        return url.deletingLastPathComponent().path
    }()

    public static var dpm: String { directory + "/dpm" }
}

/// The outcome of running a command.
public struct CommandResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    /// Decodes standard output as JSON.
    public func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8))
    }
}

/// Runs the built `dpm` binary.
public enum DPM {
    /// Runs `dpm ARGS --data-dir DATA` with extra environment variables, capturing both outputs.
    public static func run(_ arguments: [String], dataDirectory: String?, environment extra: [String: String] = [:],
                           timeout: TimeInterval = 600) throws -> CommandResult {
        try runProcess([BuiltProducts.dpm] + arguments + (dataDirectory.map { ["--data-dir", $0] } ?? []),
                       environment: extra, timeout: timeout)
    }
}

/// Runs a program with separate stdout and stderr, killing it after `timeout` seconds.
public func runProcess(_ arguments: [String], environment extra: [String: String] = [:], timeout: TimeInterval = 600,
                       currentDirectory: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: TestSupport.which(arguments[0]) ?? arguments[0])
    process.arguments = Array(arguments.dropFirst())
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("dpm-out-\(UUID().uuidString)")
    let err = FileManager.default.temporaryDirectory.appendingPathComponent("dpm-err-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(arguments) timed out after \(timeout) s"])
    }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

/// Deterministic test content.
public enum TestData {
    /// `count` pseudo-random bytes from `seed` (xorshift64*), fast enough for hundreds of MiB.
    public static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for index in 0..<words.count {
                state ^= state >> 12; state ^= state << 25; state ^= state >> 27
                words[index] = state &* 0x2545_F491_4F6C_DD1D
            }
        }
        for index in (count / 8 * 8)..<count { bytes[index] = UInt8(truncatingIfNeeded: index) }
        return bytes
    }

    /// Writes `bytes` at `offset` of the file at `path` (creating it).
    public static func write(_ bytes: [UInt8], to path: String, at offset: UInt64) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: bytes)
    }
}

/// A data directory whose `example-files` provider (the C example plugin) protects the
/// files of one folder: real backups through a real plugin, without a VM.
public struct ExampleFilesDeployment {
    public let root: String
    public var data: String { root + "/data" }
    public var files: String { root + "/files" }
    public var plugins: String { root + "/plugins" }
    public var environment: [String: String] { ["DPM_PLUGIN_PATH": plugins, "DPM_TEST_MODE": "1"] }

    public init(_ test: XCTestCase) throws {
        root = try TestSupport.temporaryDirectory(test)
        for directory in [files, plugins] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try TestSupport.compilePlugin(source: TestSupport.repositoryRoot + "/examples/c-plugin/example_plugin.c",
                                      output: plugins + "/libExampleFiles.so")
        let result = try dpm(["config", "set", "example-files.directory", files])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// Runs dpm on this deployment.
    @discardableResult
    public func dpm(_ arguments: [String], extra: [String: String] = [:], timeout: TimeInterval = 600) throws -> CommandResult {
        try DPM.run(arguments, dataDirectory: data, environment: environment.merging(extra) { $1 }, timeout: timeout)
    }

    /// Runs dpm and decodes its --json output as an object.
    public func json(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let result = try dpm(arguments + ["--json"])
        XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)", file: file, line: line)
        return try XCTUnwrap(try result.json() as? [String: Any], file: file, line: line)
    }

    /// The paths of the chunk files in the store, sorted.
    public func chunkFiles() -> [String] {
        let root = data + "/store/chunks"
        return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? [])
            .filter { ($0 as NSString).lastPathComponent.count == 64 }.map { root + "/" + $0 }.sorted()
    }

    /// Starts dpm on this deployment paused at a crash point (see `PausedCommand`).
    public func start(_ arguments: [String], pausingAt point: String) throws -> PausedCommand {
        try PausedCommand(BuiltProducts.dpm, arguments + ["--data-dir", data], environment: environment, point: point,
                          pauseFile: root + "/pause-\(UUID().uuidString.prefix(8))")
    }

    /// The recovery point ids of a data source, oldest first.
    public func recoveryPoints(_ name: String) throws -> [[String: Any]] {
        let result = try dpm(["rp", "list", name, "--json"])
        guard result.status == 0 else { return [] }
        return (try result.json() as? [String: Any])?["recovery_points"] as? [[String: Any]] ?? []
    }
}

/// A dpm process that pauses at a crash point (DPM_PAUSE_AT with DPM_PAUSE_FILE): the test
/// waits until it is paused, does something in the middle of its work, and lets it go on.
public final class PausedCommand {
    let process = Process()
    let pauseFile: String
    let output: URL
    let errors: URL

    init(_ executable: String, _ arguments: [String], environment: [String: String], point: String, pauseFile: String) throws {
        self.pauseFile = pauseFile
        output = URL(fileURLWithPath: pauseFile + ".out")
        errors = URL(fileURLWithPath: pauseFile + ".err")
        for url in [output, errors] { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // At most 10 minutes: the test ends the pause by removing the file.
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            .merging(["DPM_PAUSE_AT": "\(point):600", "DPM_PAUSE_FILE": pauseFile]) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
    }

    deinit {
        // A test that failed before `resume` leaves no process behind.
        if process.isRunning { process.terminate() }
    }

    /// Waits until the process is paused; fails when it ends (or 10 minutes pass) first.
    public func waitUntilPaused(file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(600)
        while !FileManager.default.fileExists(atPath: pauseFile) {
            guard process.isRunning, Date() < deadline else {
                let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
                XCTFail("the command never reached its pause; stderr: \(stderr)", file: file, line: line)
                throw CocoaError(.executableLoad)
            }
            usleep(10_000)
        }
    }

    /// Ends the pause and waits for the process to exit.
    public func resume() -> CommandResult {
        try? FileManager.default.removeItem(atPath: pauseFile)
        process.waitUntilExit()
        defer { for url in [output, errors] { try? FileManager.default.removeItem(at: url) } }
        return CommandResult(status: process.terminationStatus,
                             stdout: (try? String(contentsOf: output, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
    }
}
