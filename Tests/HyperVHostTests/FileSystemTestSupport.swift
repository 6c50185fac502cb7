import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

enum FileSystemTesting {
    /// A volume held in memory; the fuzz tests mutate `bytes` in place.
    final class MemoryBlockSource: BlockSource {
        var bytes: [UInt8]
        var size: UInt64 { UInt64(bytes.count) }

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
            guard offset <= size, UInt64(buffer.count) <= size - offset else {
                throw PluginError(.invalid, "read of \(buffer.count) bytes at \(offset) passes the end (\(size) bytes)")
            }
            guard buffer.count > 0 else { return }
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: buffer.count)
            }
        }
    }

    /// A raw image file as a block source.
    static func open(_ path: String) throws -> BlockSource {
        DiskImageSource(try DiskImageOpener.open(path: path, format: .raw))
    }

    /// Runs a tool, failing the test with its output when it exits non-zero.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil,
                    file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var arguments = arguments
        if let input {
            let path = NSTemporaryDirectory() + "dpm-input-\(UUID().uuidString)"
            try input.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            arguments = ["/bin/sh", "-c", arguments.map(quote).joined(separator: " ") + " < " + quote(path)]
            return try run(arguments, environment: environment, file: file, line: line)
        }
        let result = try runProcess(arguments, environment: environment, timeout: 120)
        guard result.status == 0 else {
            XCTFail("\(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr) \(result.stdout)", file: file, line: line)
            throw PluginError(.internalError, "\(arguments[0]) failed")
        }
        return result.stdout
    }

    static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Every entry below `path`, keyed by "a/b/c"; bounded so a damaged volume cannot loop.
    static func walk(_ fs: GuestFileSystem, _ path: [String] = [], depth: Int = 0, limit: inout Int,
                     into result: inout [String: FileSystemEntry]) throws {
        guard depth < 16, limit > 0 else { return }
        for entry in try fs.list(path) {
            limit -= 1
            if limit <= 0 { return }
            result[(path + [entry.name]).joined(separator: "/")] = entry
            if entry.kind == .directory { try walk(fs, path + [entry.name], depth: depth + 1, limit: &limit, into: &result) }
        }
    }

    static func walk(_ fs: GuestFileSystem) throws -> [String: FileSystemEntry] {
        var result: [String: FileSystemEntry] = [:]
        var limit = 1_000_000
        try walk(fs, limit: &limit, into: &result)
        return result
    }

    /// Reads a whole file through the file system.
    static func content(_ fs: GuestFileSystem, _ entry: FileSystemEntry) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(entry.size))
        try bytes.withUnsafeMutableBytes { try fs.read(entry, at: 0, into: $0) }
        return bytes
    }

    struct Options {
        var posix = true          // mode, uid, gid, symlinks, fifos, hard links
        var timeTolerance = 1.0   // seconds
        var directoryTimes = true
    }

    /// Compares a file system with the directory tree it was made from: the same names, kinds,
    /// sizes, contents, times (and POSIX metadata and hard links when `options.posix`).
    static func assertMatches(_ fs: GuestFileSystem, tree: String, options: Options = Options(),
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let entries = try walk(fs)
        var expected: Set<String> = []
        var inodeToIdentifier: [UInt64: UInt64] = [:]
        var identifierToInode: [UInt64: UInt64] = [:]
        func visit(_ relative: String) throws {
            let full = relative.isEmpty ? tree : tree + "/" + relative
            for name in try FileManager.default.contentsOfDirectory(atPath: full).sorted() {
                let key = relative.isEmpty ? name : relative + "/" + name
                let path = full + "/" + name
                expected.insert(key)
                var info = stat()
                XCTAssertEqual(lstat(path, &info), 0, path, file: file, line: line)
                guard let entry = entries[key] else { XCTFail("missing \(key)", file: file, line: line); continue }
                let type = info.st_mode & S_IFMT
                let kind: FileSystemEntry.Kind = type == S_IFREG ? .file : type == S_IFDIR ? .directory : type == S_IFLNK ? .symlink : .other
                XCTAssertEqual(entry.kind, kind, key, file: file, line: line)
                XCTAssertNil(entry.unreadable, key, file: file, line: line)
                if options.posix {
                    XCTAssertEqual(entry.mode, UInt32(info.st_mode & 0o7777), "mode of \(key)", file: file, line: line)
                    XCTAssertEqual(entry.uid, info.st_uid, "uid of \(key)", file: file, line: line)
                    XCTAssertEqual(entry.gid, info.st_gid, "gid of \(key)", file: file, line: line)
                    if kind != .directory {
                        if let known = inodeToIdentifier[UInt64(info.st_ino)] {
                            XCTAssertEqual(entry.identifier, known, "hard link \(key)", file: file, line: line)
                        } else {
                            XCTAssertNil(identifierToInode[entry.identifier], "\(key) shares an identifier", file: file, line: line)
                            inodeToIdentifier[UInt64(info.st_ino)] = entry.identifier
                            identifierToInode[entry.identifier] = UInt64(info.st_ino)
                        }
                    }
                }
                if kind != .directory || options.directoryTimes {
                    let mtime = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
                    let actual = entry.modified?.timeIntervalSince1970 ?? -1
                    XCTAssert(abs(actual - mtime) < options.timeTolerance, "mtime of \(key): \(actual) vs \(mtime)", file: file, line: line)
                }
                switch kind {
                case .file:
                    XCTAssertEqual(entry.size, UInt64(info.st_size), "size of \(key)", file: file, line: line)
                    let data = try fsContentMatches(fs, entry, path)
                    XCTAssertTrue(data, "content of \(key)", file: file, line: line)
                case .symlink:
                    let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                    XCTAssertEqual(entry.linkTarget, target, "target of \(key)", file: file, line: line)
                    XCTAssertEqual(entry.size, UInt64(target.utf8.count), "size of \(key)", file: file, line: line)
                case .directory:
                    try visit(key)
                case .other:
                    break
                }
            }
        }
        try visit("")
        // mkfs.ext4 adds lost+found to the root.
        let extra = Set(entries.keys).subtracting(expected).filter { $0 != "lost+found" }
        XCTAssertEqual(extra.sorted(), [], "entries not in the tree", file: file, line: line)
    }

    private static func fsContentMatches(_ fs: GuestFileSystem, _ entry: FileSystemEntry, _ path: String) throws -> Bool {
        let actual = try content(fs, entry)
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard actual.count == expected.count else { return false }
        guard !actual.isEmpty else { return true }
        return actual.withUnsafeBytes { a in expected.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
    }

    /// Sets a file's times (seconds and nanoseconds) without following symlinks.
    static func setTimes(_ path: String, seconds: Int, nanoseconds: Int = 0) {
        var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
        _ = utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// Writes `bytes` to a new file.
    static func write(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// The file's bytes.
    static func load(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Runs `body` on up to `count` mutations of `source` (1–4 bytes, each in a random region),
    /// restoring each mutation afterwards, stopping early after `seconds`. Each run may succeed
    /// or throw PluginError; anything else fails the test. Returns the number of runs.
    @discardableResult
    static func fuzz(_ source: MemoryBlockSource, regions: [Range<Int>], count: Int, seconds: Double, seed: UInt64,
                     file: StaticString = #filePath, line: UInt = #line,
                     _ body: (MemoryBlockSource) throws -> Void) -> Int {
        var generator = SeededGenerator(seed: seed)
        let regions = regions.filter { !$0.isEmpty && $0.upperBound <= source.bytes.count }
        // DPM_FUZZ_SCALE=N runs N times as many mutations for N times as long (bug hunting).
        let scale = Double(ProcessInfo.processInfo.environment["DPM_FUZZ_SCALE"] ?? "") ?? 1
        let count = Int(Double(count) * scale)
        let deadline = Date().addingTimeInterval(seconds * scale)
        var runs = 0, failures = 0
        defer { print("fuzz seed \(seed): \(runs) mutations, \(failures) ended in a PluginError") }
        while runs < count && Date() < deadline {
            runs += 1
            var saved: [(Int, UInt8)] = []
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let region = regions[Int(generator.next() % UInt64(regions.count))]
                let offset = region.lowerBound + Int(generator.next() % UInt64(region.count))
                saved.append((offset, source.bytes[offset]))
                switch generator.next() % 4 {
                case 0: source.bytes[offset] ^= UInt8(1) << (generator.next() % 8)
                case 1: source.bytes[offset] = 0xFF
                case 2: source.bytes[offset] = 0
                default: source.bytes[offset] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            do {
                try body(source)
            } catch is PluginError {
                failures += 1
            } catch {
                XCTFail("mutation \(runs) (\(saved.map { "\($0.0)" }.joined(separator: ","))): non-plugin error \(error)", file: file, line: line)
            }
            for (offset, byte) in saved.reversed() { source.bytes[offset] = byte }
        }
        return runs
    }

    /// Lists everything (bounded) and reads the first 64 KiB of every file and its volume
    /// extents: the work a fuzz iteration does on a file system.
    static func exercise(_ fs: GuestFileSystem) throws {
        var result: [String: FileSystemEntry] = [:]
        var limit = 400
        try walk(fs, limit: &limit, into: &result)
        for entry in result.values where entry.kind == .file || entry.kind == .symlink {
            var buffer = [UInt8](repeating: 0, count: Int(min(entry.size, 65536)))
            do {
                try buffer.withUnsafeMutableBytes { try fs.read(entry, at: 0, into: $0) }
                _ = try fs.volumeExtents(of: entry)
            } catch is PluginError {}
        }
    }
}
