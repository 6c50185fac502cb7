import Foundation
import PluginAPI
import TestSupport
import XCTest
@testable import HyperVHost

private typealias MemoryBlockSource = FileSystemTesting.MemoryBlockSource

/// MBR and GPT tables made by sfdisk, compared with `sfdisk --json`; damaged headers; a
/// whole VHDX disk with ext4 and FAT32 partitions; a fuzz run.
final class PartitionTableTests: XCTestCase {
    static let linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    static let basicDataType = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
    static let swapType = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

    /// A sparse disk file partitioned by sfdisk from `script`.
    private func partitionedDisk(_ script: String, megabytes: Int = 64) throws -> String {
        try TestSupport.require("sfdisk")
        let directory = try TestSupport.temporaryDirectory(self)
        let path = directory + "/disk.img"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
        XCTAssertEqual(truncate(path, off_t(megabytes) << 20), 0)
        try FileSystemTesting.run(["sfdisk", "-q", path], input: script)
        return path
    }

    /// sfdisk's view of the disk, as `Partition`s (the extended container left out).
    private func sfdiskPartitions(_ path: String) throws -> [Partition] {
        let json = try FileSystemTesting.run(["sfdisk", "--json", path])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let table = try XCTUnwrap(object["partitiontable"] as? [String: Any])
        let scheme = (table["label"] as? String) == "gpt" ? "gpt" : "mbr"
        let unit = UInt64(table["sectorsize"] as? Int ?? 512)
        return try XCTUnwrap(table["partitions"] as? [[String: Any]]).compactMap { item in
            let node = item["node"] as? String ?? ""
            let index = Int(node.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined()) ?? -1
            var type = item["type"] as? String ?? ""
            if scheme == "mbr" {
                if ["5", "f", "85"].contains(type) { return nil }
                type = "0x" + (type.count == 1 ? "0" + type : type)
            }
            return Partition(index: index, start: UInt64(item["start"] as? Int ?? 0) * unit,
                             size: UInt64(item["size"] as? Int ?? 0) * unit, type: type,
                             name: item["name"] as? String, scheme: scheme)
        }
    }

    private let gptScript = """
        label: gpt
        start=2048, size=20480, type=\(PartitionTableTests.linuxType), name="linux root"
        size=40960, type=\(PartitionTableTests.basicDataType), name="Données ✓"
        size=10240, type=\(PartitionTableTests.swapType), name="swap"
        """

    func testGPTMatchesSfdisk() throws {
        let path = try partitionedDisk(gptScript)
        let report = try PartitionTable.inspect(try FileSystemTesting.open(path))
        XCTAssertEqual(report.scheme, "gpt")
        XCTAssertEqual(report.warnings, [])
        XCTAssertEqual(report.partitions.count, 3)
        XCTAssertEqual(report.partitions, try sfdiskPartitions(path))
        XCTAssertEqual(report.partitions.map(\.name), ["linux root", "Données ✓", "swap"])
    }

    /// sfdisk cannot write 4096-byte-sector tables into a file, so the test rewrites sfdisk's
    /// 512-byte GPT for 4096-byte sectors (LBAs divided by 8, CRCs recomputed).
    func testGPTWith4096ByteSectors() throws {
        XCTAssertEqual(GPT.CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        let path = try partitionedDisk(gptScript)
        let original = try FileSystemTesting.load(path)
        let expected = try sfdiskPartitions(path)
        var entries = Array(original[1024..<1024 + 128 * 128])
        for slot in 0..<128 where entries.le64(slot * 128 + 0x20) != 0 {
            entries.putLE64(entries.le64(slot * 128 + 0x20) / 8, at: slot * 128 + 0x20)
            entries.putLE64((entries.le64(slot * 128 + 0x28) + 1) / 8 - 1, at: slot * 128 + 0x28)
        }
        var disk = [UInt8](repeating: 0, count: original.count)
        disk.put(Array(original[0..<512]), at: 0)  // protective MBR (its sizes are not used)
        let lastLBA = UInt64(disk.count / 4096 - 1)
        for (lba, other, entriesLBA) in [(UInt64(1), lastLBA, UInt64(2)), (lastLBA, UInt64(1), lastLBA - 4)] {
            var header = Array(original[512..<512 + 92])
            header.putLE64(lba, at: 0x18)
            header.putLE64(other, at: 0x20)
            header.putLE64(6, at: 0x28)
            header.putLE64(lastLBA - 5, at: 0x30)
            header.putLE64(entriesLBA, at: 0x48)
            header.putLE32(GPT.CRC32.checksum(entries), at: 0x58)
            header.putLE32(0, at: 0x10)
            header.putLE32(GPT.CRC32.checksum(header), at: 0x10)
            disk.put(header, at: Int(lba) * 4096)
            disk.put(entries, at: Int(entriesLBA) * 4096)
        }
        let report = try PartitionTable.inspect(MemoryBlockSource(disk))
        XCTAssertEqual(report.sectorSize, 4096)
        XCTAssertEqual(report.warnings, [])
        XCTAssertEqual(report.partitions, expected)
    }

    /// Two primaries, an extended partition (slot 3) and two logical partitions in it.
    private let mbrScript = """
        label: dos
        disk.img1 : start=2048, size=20480, type=83
        disk.img2 : size=20480, type=7, bootable
        disk.img3 : size=81920, type=5
        disk.img5 : size=20480, type=83
        disk.img6 : size=30720, type=c
        """

    func testMBRWithLogicalPartitionsMatchesSfdisk() throws {
        let path = try partitionedDisk(mbrScript)
        let report = try PartitionTable.inspect(try FileSystemTesting.open(path))
        XCTAssertEqual(report.scheme, "mbr")
        XCTAssertEqual(report.warnings, [])
        XCTAssertEqual(report.partitions.map(\.index), [1, 2, 5, 6])
        XCTAssertEqual(report.partitions.map(\.type), ["0x83", "0x07", "0x83", "0x0c"])
        XCTAssertEqual(report.partitions, try sfdiskPartitions(path))
    }

    func testDamagedPrimaryGPTFallsBackToBackup() throws {
        let path = try partitionedDisk(gptScript)
        let expected = try sfdiskPartitions(path)
        // A flipped byte in the primary header, then (separately) in the primary entry array.
        for offset in [512 + 0x30, 1024 + 0x38] {
            let disk = MemoryBlockSource(try FileSystemTesting.load(path))
            disk.bytes[offset] ^= 0x5A
            let report = try PartitionTable.inspect(disk)
            XCTAssertEqual(report.partitions, expected)
            XCTAssertEqual(report.warnings.count, 1)
            XCTAssertTrue(report.warnings[0].contains("primary header at LBA 1 is damaged"), report.warnings[0])
            XCTAssertTrue(report.warnings[0].contains("using the backup header"), report.warnings[0])
        }
        // Sector 0 and the whole primary GPT wiped: found and read from the backup alone.
        let wiped = MemoryBlockSource(try FileSystemTesting.load(path))
        wiped.bytes.replaceSubrange(0..<34 * 512, with: [UInt8](repeating: 0, count: 34 * 512))
        let recovered = try PartitionTable.inspect(wiped)
        XCTAssertEqual(recovered.partitions, expected)
        XCTAssertEqual(recovered.warnings.count, 2, "\(recovered.warnings)")
        // A damaged backup alone is reported while the primary is used.
        let disk = MemoryBlockSource(try FileSystemTesting.load(path))
        disk.bytes[disk.bytes.count - 512 + 0x30] ^= 1
        let report = try PartitionTable.inspect(disk)
        XCTAssertEqual(report.partitions, expected)
        XCTAssertTrue(report.warnings.first?.contains("backup header") ?? false, "\(report.warnings)")
    }

    func testBothGPTHeadersDamagedIsAClearError() throws {
        let path = try partitionedDisk(gptScript)
        let disk = MemoryBlockSource(try FileSystemTesting.load(path))
        disk.bytes[512 + 0x30] ^= 1
        disk.bytes[disk.bytes.count - 512 + 0x30] ^= 1
        XCTAssertThrowsError(try PartitionTable.read(disk)) { error in
            let error = error as? PluginError
            XCTAssertEqual(error?.code, .corrupt)
            XCTAssertTrue(error?.message.contains("both headers are damaged") ?? false, error?.message ?? "")
        }
    }

    func testDisksWithoutATable() throws {
        XCTAssertEqual(try PartitionTable.read(MemoryBlockSource([UInt8](repeating: 0, count: 1 << 20))), [])
        XCTAssertEqual(try PartitionTable.read(MemoryBlockSource([UInt8](repeating: 0, count: 100))), [])
        try TestSupport.require("mkfs.vfat")
        let directory = try TestSupport.temporaryDirectory(self)
        try FileSystemTesting.run(["mkfs.vfat", "-F", "32", "-C", directory + "/fat.img", "65536"])
        XCTAssertEqual(try PartitionTable.read(try FileSystemTesting.open(directory + "/fat.img")), [])
    }

    /// An EBR that links back to itself: the logical partition is listed once, with a warning.
    func testLoopingEBRChainStops() throws {
        var bytes = [UInt8](repeating: 0, count: 4 << 20)
        func entry(_ sector: Int, _ slot: Int, type: UInt8, start: UInt32, count: UInt32) {
            let base = sector * 512 + 0x1BE + slot * 16
            bytes[base + 4] = type
            bytes.putLE32(start, at: base + 8)
            bytes.putLE32(count, at: base + 12)
            bytes[sector * 512 + 510] = 0x55
            bytes[sector * 512 + 511] = 0xAA
        }
        entry(0, 0, type: 0x83, start: 2048, count: 1024)
        entry(0, 1, type: 0x05, start: 4096, count: 2048)
        entry(4096, 0, type: 0x83, start: 64, count: 512)
        entry(4096, 1, type: 0x05, start: 0, count: 1024)  // next EBR = the extended start again
        let report = try PartitionTable.inspect(MemoryBlockSource(bytes))
        XCTAssertEqual(report.partitions.map(\.index), [1, 5])
        XCTAssertEqual(report.partitions.last?.start, (4096 + 64) * 512)
        XCTAssertTrue(report.warnings.contains { $0.contains("loops") }, "\(report.warnings)")
    }

    func testLinuxSwapSignature() throws {
        var page = [UInt8](repeating: 0, count: 1 << 20)
        XCTAssertFalse(SwapSignature.isLinuxSwap(MemoryBlockSource(page)))
        page.putASCII("SWAPSPACE2", at: 4086)
        XCTAssertTrue(SwapSignature.isLinuxSwap(MemoryBlockSource(page)))
        XCTAssertFalse(SwapSignature.isLinuxSwap(MemoryBlockSource(Array(page.prefix(4000)))))
        try TestSupport.require("mkswap")
        let directory = try TestSupport.temporaryDirectory(self)
        try FileSystemTesting.write([UInt8](repeating: 0, count: 4 << 20), directory + "/swap")
        try FileSystemTesting.run(["mkswap", directory + "/swap"])
        XCTAssertTrue(SwapSignature.isLinuxSwap(try FileSystemTesting.open(directory + "/swap")))
    }

    /// Mutations of the MBR, EBRs, GPT headers and entries: a result or a PluginError, never a crash.
    func testFuzzPartitionTables() throws {
        let gpt = MemoryBlockSource(try FileSystemTesting.load(try partitionedDisk(gptScript)))
        let mbrPath = try partitionedDisk(mbrScript)
        let mbr = MemoryBlockSource(try FileSystemTesting.load(mbrPath))
        let ebrs = try PartitionTable.read(mbr).filter { $0.index >= 5 }.map { Int($0.start) - 2048 * 512 }
        let end = gpt.bytes.count
        let gptRuns = FileSystemTesting.fuzz(gpt, regions: [0..<512, 512..<604, 1024..<1536, end - 512..<end - 420, end - 33 * 512..<end - 32 * 512],
                                             count: 1500, seconds: 3, seed: 11) { _ = try PartitionTable.inspect($0) }
        let mbrRuns = FileSystemTesting.fuzz(mbr, regions: [0x1BE..<512] + ebrs.map { $0 + 0x1BE..<$0 + 512 },
                                             count: 1500, seconds: 3, seed: 12) { _ = try PartitionTable.inspect($0) }
        XCTAssertGreaterThan(gptRuns + mbrRuns, 500)
    }

    /// A GPT disk with an ext4 and a FAT32 partition, converted to VHDX, read end to end.
    func testWholeVHDXDiskWithExt4AndFAT32() throws {
        for tool in ["mkfs.ext4", "mkfs.vfat", "mcopy", "qemu-img", "sfdisk"] { try TestSupport.require(tool) }
        let directory = try TestSupport.temporaryDirectory(self)
        let tree = directory + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/docs/nested", withIntermediateDirectories: true)
        try FileSystemTesting.write(TestData.random(3 << 20, seed: 5), tree + "/docs/payload.bin")
        try FileSystemTesting.write(Array("note\n".utf8), tree + "/docs/nested/Read me first.txt")
        FileSystemTesting.setTimes(tree + "/docs/payload.bin", seconds: 1_650_000_000)
        FileSystemTesting.setTimes(tree + "/docs/nested/Read me first.txt", seconds: 1_650_000_100)
        try FileSystemTesting.run(["mkfs.ext4", "-q", "-F", "-d", tree, directory + "/ext4.img", "32M"], environment: ["E2FSPROGS_FAKE_TIME": "1700000000"])
        try FileSystemTesting.run(["mkfs.vfat", "-F", "32", "-C", directory + "/fat.img", String(40 << 10)])
        try FileSystemTesting.run(["mcopy", "-s", "-m", "-i", directory + "/fat.img", tree + "/docs", "::/"], environment: ["TZ": "UTC", "LC_ALL": "C.UTF-8"])
        let disk = try partitionedDisk("""
            label: gpt
            start=2048, size=\(32 << 11), type=\(Self.linuxType), name="root"
            size=\(40 << 11), type=\(Self.basicDataType), name="data"
            """, megabytes: 80)
        for (image, sector) in [("ext4.img", 2048), ("fat.img", 2048 + (32 << 11))] {
            try FileSystemTesting.run(["dd", "if=" + directory + "/" + image, "of=" + disk, "bs=512", "seek=\(sector)", "conv=notrunc", "status=none"])
        }
        try FileSystemTesting.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", disk, directory + "/disk.vhdx"])
        let source = DiskImageSource(try DiskImageOpener.open(path: directory + "/disk.vhdx"))
        let partitions = try PartitionTable.read(source)
        XCTAssertEqual(partitions.map(\.name), ["root", "data"])
        var types: [String] = []
        for partition in partitions {
            let volume = try BlockSlice(source, offset: partition.start, size: partition.size)
            let fs: GuestFileSystem
            if Ext4FileSystem.probe(volume) {
                XCTAssertFalse(FAT32FileSystem.probe(volume))
                fs = try Ext4FileSystem(volume: volume)
                try FileSystemTesting.assertMatches(fs, tree: tree, options: .init(posix: true, timeTolerance: 1, directoryTimes: false))
            } else {
                XCTAssertTrue(FAT32FileSystem.probe(volume))
                fs = try FAT32FileSystem(volume: volume)
                try FileSystemTesting.assertMatches(fs, tree: tree, options: .init(posix: false, timeTolerance: 2, directoryTimes: false))
            }
            XCTAssertFalse(SwapSignature.isLinuxSwap(volume))
            types.append(fs.type)
        }
        XCTAssertEqual(types, ["ext4", "fat32"])
    }
}
