import Foundation
import PluginAPI
import XCTest
@testable import HyperVHost

/// Throughput of the readers and writers on a 1 GiB disk holding 512 MiB of random data.
/// Skipped unless DPM_FORMAT_BENCH=1; meant for a release build:
///
///     swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path .build-formats
///     DPM_FORMAT_BENCH=1 swift test -c release --skip-build --scratch-path .build-formats --filter FormatBenchmarkTests
final class FormatBenchmarkTests: XCTestCase {
    func testReadAndWriteThroughput() throws {
        guard ProcessInfo.processInfo.environment["DPM_FORMAT_BENCH"] == "1" else {
            throw XCTSkip("benchmark: set DPM_FORMAT_BENCH=1 (and use a release build)")
        }
        let directory = try TemporaryDirectory("bench")
        let size = 1 << 30, piece = 4 << 20
        let source = directory.path("source.raw")
        let writer = try DiskImageWriters.create(path: source, format: .raw, virtualSize: UInt64(size))
        var random = SeededGenerator(seed: 5)
        let chunk = random.bytes(piece)
        for index in stride(from: 0, to: size / piece, by: 2) {
            try chunk.withUnsafeBytes { try writer.write(at: UInt64(index * piece), $0) }
        }
        try writer.finish()
        var images: [(String, String)] = [("raw", source)]
        for (name, arguments) in [("vhdx-32M", ["-O", "vhdx", "-o", "block_size=32M"]), ("vhdx-1M", ["-O", "vhdx", "-o", "block_size=1M"]),
                                  ("vhd", ["-O", "vpc"]), ("qcow2", ["-O", "qcow2"])] {
            let path = directory.path(name)
            try FormatTools.run("qemu-img", ["convert", "-f", "raw"] + arguments + [source, path])
            images.append((name, path))
        }
        var buffer = [UInt8](repeating: 0, count: piece)
        for (name, path) in images {
            let image = try DiskImageOpener.open(path: path)
            var start = Date()
            let map = try image.allocationMap()
            let mapTime = Date().timeIntervalSince(start)
            start = Date()
            var bytes: UInt64 = 0
            for extent in map where extent.flag == .data {
                var offset = extent.offset
                while offset < extent.end {
                    let count = Int(min(UInt64(piece), extent.end - offset))
                    try buffer.withUnsafeMutableBytes { try image.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                    offset += UInt64(count)
                    bytes += UInt64(count)
                }
            }
            let readTime = Date().timeIntervalSince(start)
            print(String(format: "bench read %-9@ map %.3f s (%d extents), %d MiB .data at %.0f MiB/s", name as NSString, mapTime, map.count,
                         Int(bytes >> 20), Double(bytes >> 20) / readTime))
        }
        let sourceImage = try DiskImageOpener.open(path: source)
        for format in [DiskFormat.vhdx, .vhd, .raw] {
            let target = directory.path("written.\(format.rawValue)")
            let start = Date()
            let output = try DiskImageWriters.create(path: target, format: format, virtualSize: UInt64(size))
            for extent in try sourceImage.allocationMap() where extent.flag == .data {
                var offset = extent.offset
                while offset < extent.end {
                    let count = Int(min(UInt64(piece), extent.end - offset))
                    try buffer.withUnsafeMutableBytes { try sourceImage.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count])) }
                    try buffer.withUnsafeBytes { try output.write(at: offset, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    offset += UInt64(count)
                }
            }
            try output.finish()
            print(String(format: "bench write %@: 512 MiB copied in %.2f s", format.rawValue, Date().timeIntervalSince(start)))
        }
    }
}
