import Foundation
import Glibc
import PluginAPI
import XCTest
@testable import HyperVHost

/// Random mutations of small real images: every open, allocation map and read must either
/// succeed or throw a PluginError — never crash, hang or throw anything else.
///
/// Seeds: images made by qemu-img (VHDX, VHDX with a live log, VHD dynamic and fixed, qcow2,
/// qcow2 over a backing file), differencing VHDX/VHD children made by dpm's writers, and the
/// Windows fixtures. Mutations (fixed seed): 1–8 byte changes, mostly inside the structures
/// the parsers read (headers, region tables, metadata, BAT, log, L1/L2 tables), otherwise
/// anywhere in the first 2 MiB — half of the time with the VHDX/VHD checksums recomputed
/// afterwards, so that mutated fields reach the parsers — and truncations. The file is
/// restored after each mutation.
final class FuzzTests: XCTestCase {
    /// Defaults keep the test at a few seconds; `scripts/fuzz-disk-formats.sh` raises them
    /// through DPM_FUZZ_MUTATIONS, DPM_FUZZ_SEED and DPM_FUZZ_SECONDS for long campaigns.
    static let environment = ProcessInfo.processInfo.environment
    static let mutations = Int(environment["DPM_FUZZ_MUTATIONS"] ?? "") ?? 3000
    static let randomSeed = UInt64(environment["DPM_FUZZ_SEED"] ?? "") ?? 20_240_601
    static let timeBudget = TimeInterval(environment["DPM_FUZZ_SECONDS"] ?? "") ?? 40
    /// When set, the path of the file about to be exercised is written here before each
    /// mutation, so a crash leaves the mutated input behind for the script to keep.
    static let tracePath = environment["DPM_FUZZ_TRACE"]
    /// When "1", prints how often each (number-stripped) error message occurred.
    static let verbose = environment["DPM_FUZZ_VERBOSE"] == "1"
    private var messages: [String: Int] = [:]

    struct Seed {
        let name: String
        let path: String
        let original: [UInt8]
        /// Byte ranges worth mutating more often.
        let hot: [Range<Int>]
    }

    private func makeSeeds(in directory: TemporaryDirectory) throws -> [Seed] {
        var paths: [(String, String)] = []
        if FormatTools.find("qemu-img") != nil && FormatTools.find("qemu-io") != nil {
            func qemu(_ name: String, _ format: String, _ options: [String], _ size: String, _ writes: [String]) throws {
                let path = directory.path(name)
                try FormatTools.run("qemu-img", ["create", "-q", "-f", format] + options + [path, size])
                if !writes.isEmpty { try FormatTools.qemuIO(path, format: format, writes) }
                paths.append((name, path))
            }
            try qemu("dynamic.vhdx", "vhdx", ["-o", "block_size=1M"], "4M", ["write -P 0x11 0 1M", "write -P 0x22 2M 64k"])
            try qemu("dynamic.vhd", "vpc", [], "4M", ["write -P 0x33 0 64k", "write -P 0x44 2M 1M"])
            try qemu("fixed.vhd", "vpc", ["-o", "subformat=fixed"], "2M", ["write -P 0x55 4096 4096"])
            try qemu("plain.qcow2", "qcow2", ["-o", "cluster_size=4096"], "4M", ["write -P 0x66 0 64k", "write -z 8k 4k", "write -P 0x77 3M 8k"])
            try qemu("base.qcow2", "qcow2", [], "4M", ["write -P 0x12 0 1M"])
            try qemu("top.qcow2", "qcow2", ["-b", "base.qcow2", "-F", "qcow2"], "4M", ["write -P 0x34 512k 64k"])
            let logged = try VHDXLogCrafting.makeBase(in: directory, name: "logged.vhdx")
            let guid = MSGUID.random()
            let size = UInt64(try FileReader(path: logged.path).physicalSize)
            let entry = VHDXLogCrafting.entry(sequence: 9, tail: 0, logGuid: guid, flushedFileOffset: size, lastFileOffset: size,
                                              [.zero(fileOffset: logged.block0, length: 4096), .data(fileOffset: logged.batOffset, bytes: logged.bat)])
            try VHDXLogCrafting.install(into: logged.path, entries: [(0, entry)], logGuid: guid)
            paths.append(("logged.vhdx", logged.path))
        }
        // Seeds dpm's writers make: a dynamic parent of each format and a differencing child.
        for (format, ext) in [(DiskFormat.vhdx, "vhdx"), (.vhd, "vhd")] {
            let parent = directory.path("writer-parent.\(ext)"), child = directory.path("writer-child.\(ext)")
            var random = SeededGenerator(seed: 99)
            _ = try DifferencingTests.write([(0, random.bytes(1 << 20)), (3 << 20, random.bytes(4096))],
                                            to: try DiskImageWriters.create(path: parent, format: format, virtualSize: 4 << 20, blockSize: 1 << 20),
                                            over: [UInt8](repeating: 0, count: 4 << 20))
            _ = try DifferencingTests.write([(4096, random.bytes(8192)), (2 << 20, random.bytes(1 << 20))],
                                            to: try DiskImageWriters.createDifferencing(path: child, format: format, parentPath: parent, blockSize: 1 << 20),
                                            over: [UInt8](repeating: 0, count: 4 << 20))
            paths += [("writer-parent.\(ext)", parent), ("writer-child.\(ext)", child)]
        }
        for name in ["fixed.vhdx", "dynamic.vhdx"] {
            if let path = try? WindowsFixtureTests.expand(name, into: directory) { paths.append(("windows-\(name)", path)) }
        }
        return try paths.map { name, path in
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            return Seed(name: name, path: path, original: original, hot: try hotRanges(path, size: original.count))
        }
    }

    /// The byte ranges the parsers read, found by opening the intact seed.
    private func hotRanges(_ path: String, size: Int) throws -> [Range<Int>] {
        func clip(_ start: UInt64, _ length: Int) -> Range<Int>? {
            let lower = Int(min(start, UInt64(size))), upper = min(lower + length, size)
            return lower < upper ? lower..<upper : nil
        }
        var ranges: [Range<Int>?] = [clip(0, 4096), clip(UInt64(max(0, size - 512)), 512)]
        switch try DiskImageOpener.open(path: path) {
        case let image as VHDXImage:
            ranges += [clip(64 << 10, 4096), clip(128 << 10, 4096), clip(192 << 10, 256), clip(256 << 10, 256),
                       clip(image.regions.metadata.fileOffset, 1024), clip(image.regions.metadata.fileOffset + 65536, 1024),
                       clip(image.regions.bat.fileOffset, 4096), clip(image.header.logOffset, 16384)]
        case let image as VHDImage:
            if let header = image.dynamicHeader {
                ranges += [clip(512, 1024), clip(header.tableOffset, 4096)] + header.locators.map { clip($0.dataOffset, Int($0.dataLength)) }
            }
        case let image as QCOW2Image:
            ranges += [clip(image.header.l1TableOffset, 4096), clip(0, 65536 * 4)]
        default:
            break
        }
        return ranges.compactMap { $0 }
    }

    /// Recomputes the checksums of the structures a mutation may have touched, so the mutated
    /// fields get past the checksum and reach the parsers' field checks. Each patched byte's
    /// original value is recorded in `restore`.
    private func reseal(_ seed: Seed, fd: Int32, restore: inout [(Int, UInt8)]) {
        func current(_ offset: Int, _ count: Int) -> [UInt8]? {
            guard offset >= 0, count > 0, offset + count <= seed.original.count else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return read == count ? bytes : nil
        }
        func put(_ bytes: [UInt8], at offset: Int) {
            for index in 0..<bytes.count where offset + index < seed.original.count {
                restore.append((offset + index, seed.original[offset + index]))
            }
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
        }
        let name = seed.name
        if name.hasSuffix(".vhdx") {
            for (offset, size) in [(64 << 10, 4096), (128 << 10, 4096), (192 << 10, 65536), (256 << 10, 65536)] {
                guard var bytes = current(offset, size) else { continue }
                CRC32C.seal(&bytes, fieldOffset: 4)
                put(Array(bytes[4..<8]), at: offset + 4)
            }
            if name == "logged.vhdx", let head = current(1 << 20, 4096) {
                let length = Int(head.le32(8))
                if length > 0, length % 4096 == 0, length <= 1 << 20, var entry = current(1 << 20, length) {
                    CRC32C.seal(&entry, fieldOffset: 4)
                    put(Array(entry[4..<8]), at: (1 << 20) + 4)
                }
            }
        } else if name.hasSuffix(".vhd") {
            for offset in [0, seed.original.count - 512] {
                guard var footer = current(offset, 512), footer.matches("conectix", at: 0) else { continue }
                footer.putBE32(VHDFooter.checksum(footer, excluding: 64), at: 64)
                put(Array(footer[64..<68]), at: offset + 64)
            }
            if var header = current(512, 1024), header.matches("cxsparse", at: 0) {
                header.putBE32(VHDFooter.checksum(header, excluding: 36), at: 36)
                put(Array(header[36..<40]), at: 512 + 36)
            }
        }
    }

    /// Opens the (mutated) file and exercises it; returns false if something other than a
    /// PluginError was thrown.
    private func exercise(_ path: String, random: inout SeededGenerator, outcome: inout String) -> String? {
        outcome = "opened"
        do {
            let image = try DiskImageOpener.open(path: path)
            outcome = "mapped"
            _ = try image.allocationMap()
            outcome = "read"
            let size = image.virtualSize
            guard size > 0 else { return nil }
            var offsets: [UInt64] = [0, size - min(size, 65536), random.next() % size]
            offsets.append((random.next() % size) & ~4095)
            for offset in offsets {
                let count = Int(min(UInt64(1 + random.next() % (256 << 10)), size - offset))
                _ = try ImageChecks.read(image, at: offset, count: count)
            }
            return nil
        } catch let error as PluginError {
            if Self.verbose {
                let words = error.message.split(separator: ":", maxSplits: 1).last.map(String.init) ?? error.message
                let shape = String(words.map { $0.isNumber ? "#" : $0 }).replacingOccurrences(of: "##", with: "#")
                messages[String(shape.prefix(90)), default: 0] += 1
            }
            outcome = "\(outcome == "opened" ? "open" : outcome == "mapped" ? "map" : "read") error \(error.code)"
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testMutatedImagesNeverCrash() throws {
        let directory = try TemporaryDirectory("fuzz")
        let seeds = try makeSeeds(in: directory)
        XCTAssertFalse(seeds.isEmpty)
        var random = SeededGenerator(seed: Self.randomSeed)
        var outcomes: [String: Int] = [:]
        let start = Date()
        var done = 0
        let interesting: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x10]
        while done < Self.mutations && Date().timeIntervalSince(start) < Self.timeBudget {
            let seed = seeds[done % seeds.count]
            let fd = open(seed.path, O_WRONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            defer { close(fd) }
            var restore: [(Int, UInt8)] = []
            var truncatedAt: Int?
            if random.next() % 100 < 12 {
                let cut = Int(random.next() % UInt64(seed.original.count))
                XCTAssertEqual(ftruncate(fd, off_t(cut)), 0)
                truncatedAt = cut
            } else {
                for _ in 0..<(1 + Int(random.next() % 8)) {
                    let position: Int
                    if random.next() % 100 < 75, !seed.hot.isEmpty {
                        let range = seed.hot[Int(random.next() % UInt64(seed.hot.count))]
                        position = range.lowerBound + Int(random.next() % UInt64(range.count))
                    } else {
                        position = Int(random.next() % UInt64(min(seed.original.count, 2 << 20)))
                    }
                    var value = UInt8(truncatingIfNeeded: random.next())
                    if random.next() % 3 == 0 { value = interesting[Int(random.next() % UInt64(interesting.count))] }
                    restore.append((position, seed.original[position]))
                    _ = pwrite(fd, [value], 1, off_t(position))
                }
                if random.next() % 2 == 0 { reseal(seed, fd: fd, restore: &restore) }
            }
            let path = seed.path
            if let trace = Self.tracePath {
                try? "\(path)\n\(seed.name) mutation \(done)\n".write(toFile: trace, atomically: false, encoding: .utf8)
            }
            var outcome = ""
            if let failure = exercise(path, random: &random, outcome: &outcome) {
                XCTFail("\(seed.name), mutation \(done): a non-PluginError escaped: \(failure)")
            }
            outcomes[outcome, default: 0] += 1
            if let cut = truncatedAt {
                seed.original.withUnsafeBytes { bytes in
                    _ = pwrite(fd, bytes.baseAddress! + cut, seed.original.count - cut, off_t(cut))
                }
            }
            for (position, byte) in restore.reversed() { _ = pwrite(fd, [byte], 1, off_t(position)) }
            done += 1
        }
        let elapsed = Date().timeIntervalSince(start)
        print("fuzz: \(done) mutations over \(seeds.count) seeds in \(String(format: "%.1f", elapsed)) s (seed \(Self.randomSeed)); outcomes: "
              + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        if Self.verbose {
            for (message, count) in messages.sorted(by: { $0.value > $1.value }) { print(String(format: "%6d ", count) + message) }
        }
        XCTAssertGreaterThanOrEqual(done, min(Self.mutations, 500), "too few mutations ran within the time budget")
    }
}
