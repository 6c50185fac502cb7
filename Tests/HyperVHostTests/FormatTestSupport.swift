import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// External tools the format tests drive (qemu-img, qemu-io, vhdiinfo).
///
/// A missing tool skips the test with a reason, unless the environment variable `CI` is `true`:
/// there a missing tool is a failure, so a misconfigured CI machine cannot pass silently.
enum FormatTools {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The tool's path; skips (or, in CI, fails) the test when it is missing.
    static func require(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let found = find(name) { return found }
        let reason = "\(name) is not installed (apt-get install -y qemu-utils libvhdi-utils)"
        if isCI {
            XCTFail("CI=true but \(reason)", file: file, line: line)
            throw PluginError(.notFound, reason)
        }
        throw XCTSkip(reason)
    }

    /// Runs a tool; throws with its output when it exits non-zero (unless `allowFailure`).
    @discardableResult
    static func run(_ name: String, _ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
        let executable = try require(name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if process.terminationStatus != 0 && !allowFailure {
            throw PluginError(.internalError, "\(name) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(output)")
        }
        return (process.terminationStatus, output)
    }

    /// `qemu-img convert -O raw`: the reference content of an image, as bytes.
    static func referenceContent(of path: String, format: String? = nil, in directory: TemporaryDirectory) throws -> [UInt8] {
        let output = directory.path("reference-\(UUID().uuidString).raw")
        var arguments = ["convert"]
        if let format { arguments += ["-f", format] }
        try run("qemu-img", arguments + ["-O", "raw", path, output])
        defer { try? FileManager.default.removeItem(atPath: output) }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    /// `qemu-io -f format -c cmd … path`.
    static func qemuIO(_ path: String, format: String, _ commands: [String]) throws {
        try run("qemu-io", ["-f", format] + commands.flatMap { ["-c", $0] } + [path])
    }
}

/// A directory under /tmp removed with its content when released.
final class TemporaryDirectory {
    let url: URL

    init(_ label: String = "formats") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dpm-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// Deterministic pseudo-random bytes (xorshift64*), for patterns and fuzzing.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            let value = next()
            for shift in stride(from: 0, to: 64, by: 8) where index < count {
                result[index] = UInt8(truncatingIfNeeded: value >> UInt64(shift))
                index += 1
            }
        }
        return result
    }
}

enum ImageChecks {
    static let piece = 4 << 20

    /// Byte-range equality through memcmp (element-wise comparison is slow in debug builds).
    static func same(_ a: [UInt8], _ aRange: Range<Int>, _ b: [UInt8], _ bRange: Range<Int>) -> Bool {
        guard aRange.count == bRange.count else { return false }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                memcmp(x.baseAddress! + aRange.lowerBound, y.baseAddress! + bRange.lowerBound, aRange.count) == 0
            }
        }
    }

    /// The first index in `range` where two equally long arrays differ, or nil.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
        guard a.count == b.count else { return min(a.count, b.count) }
        var start = 0
        while start < a.count {
            let end = min(start + 65536, a.count)
            if !same(a, start..<end, b, start..<end) {
                return (start..<end).first { a[$0] != b[$0] }
            }
            start = end
        }
        return nil
    }

    /// The first non-zero byte of `bytes[range]`, or nil.
    static func firstNonZero(_ bytes: [UInt8], _ range: Range<Int>) -> Int? {
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start + 65536, range.upperBound)
            let zero = bytes.withUnsafeBytes { ZeroScan.isAllZero(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
            if !zero { return (start..<end).first { bytes[$0] != 0 } }
            start = end
        }
        return nil
    }

    /// Reads the whole virtual disk in 4 MiB pieces.
    static func readAll(_ image: DiskImage) throws -> [UInt8] {
        var content = [UInt8](repeating: 0, count: Int(image.virtualSize))
        var offset = 0
        while offset < content.count {
            let count = min(piece, content.count - offset)
            try content.withUnsafeMutableBytes { buffer in
                try image.read(at: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<offset + count]))
            }
            offset += count
        }
        return content
    }

    /// Reads `count` bytes at `offset`.
    static func read(_ image: DiskImage, at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xCC, count: count)
        try bytes.withUnsafeMutableBytes { try image.read(at: offset, into: $0) }
        return bytes
    }

    /// Checks the allocation map's shape and that it agrees with the reference content:
    /// extents tile [0, size) in order with adjacent flags different, every .zero range is zeros
    /// in the reference (so .data covers every non-zero byte). Returns the .data byte count.
    @discardableResult
    static func checkMap(_ image: DiskImage, reference: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
        let map = try image.allocationMap()
        var position: UInt64 = 0
        var dataBytes: UInt64 = 0
        for (index, extent) in map.enumerated() {
            XCTAssertEqual(extent.offset, position, "extent \(index) does not start where the previous ended", file: file, line: line)
            XCTAssertGreaterThan(extent.length, 0, "empty extent \(index)", file: file, line: line)
            if index > 0 { XCTAssertNotEqual(map[index - 1].flag, extent.flag, "adjacent extents \(index - 1), \(index) not merged", file: file, line: line) }
            XCTAssertNotEqual(extent.flag, .excluded, file: file, line: line)
            if extent.flag == .zero {
                let range = Int(extent.offset)..<Int(extent.end)
                if let nonZero = firstNonZero(reference, range) {
                    XCTFail("map says .zero for \(range) but the reference has a non-zero byte at \(nonZero)", file: file, line: line)
                }
            } else {
                dataBytes += extent.length
            }
            position = extent.end
        }
        XCTAssertEqual(position, image.virtualSize, "extents do not cover the virtual disk", file: file, line: line)
        return dataBytes
    }

    /// Compares the whole content and some unaligned ranges with the reference, and checks the map.
    @discardableResult
    static func checkAgainstReference(_ image: DiskImage, reference: [UInt8], seed: UInt64 = 1,
                                      file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
        XCTAssertEqual(image.virtualSize, UInt64(reference.count), "virtual size", file: file, line: line)
        guard image.virtualSize == UInt64(reference.count) else { return 0 }
        let content = try readAll(image)
        if let first = firstDifference(content, reference) {
            XCTFail("content differs from the reference, first at byte \(first)", file: file, line: line)
        }
        var random = SeededGenerator(seed: seed)
        for _ in 0..<40 where reference.count > 0 {
            let offset = Int(random.next() % UInt64(reference.count))
            let count = Int(random.next() % UInt64(min(3 << 20, reference.count - offset))) + (offset == reference.count ? 0 : 1)
            let length = min(count, reference.count - offset)
            let bytes = try read(image, at: UInt64(offset), count: length)
            XCTAssertTrue(same(bytes, 0..<length, reference, offset..<offset + length), "unaligned read at \(offset) (+\(length)) differs", file: file, line: line)
        }
        return try checkMap(image, reference: reference, file: file, line: line)
    }

    /// Asserts that `body` throws a PluginError with `code` whose message contains every fragment.
    static func expectError<T>(_ code: PluginError.Code, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected a PluginError(\(code)) containing \(fragments)", file: file, line: line)
        } catch let error as PluginError {
            XCTAssertEqual(error.code, code, "wrong code for: \(error.message)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.message.contains(fragment), "message \"\(error.message)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        } catch {
            XCTFail("expected a PluginError, got \(error)", file: file, line: line)
        }
    }
}
