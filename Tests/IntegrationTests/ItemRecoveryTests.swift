import Foundation
import TestSupport
import XCTest

/// Item-level recovery end to end: a GPT disk with NTFS, ext4, FAT32 and swap partitions
/// (made with mkntfs + libntfs-3g, mkfs.ext4 -d, mkfs.vfat + mcopy, mkswap, sfdisk), wrapped
/// in VHDX by qemu-img, backed up by dpm, browsed and extracted; names, sizes, bytes and
/// times match the sources; page file and swap are excluded; hostile names stay inside.
final class ItemRecoveryTests: XCTestCase {
    var root = ""
    var data: String { root + "/data" }

    override func setUpWithError() throws {
        for tool in ["qemu-img", "sfdisk", "mkntfs", "mkfs.ext4", "mkfs.vfat", "mcopy", "mkswap", "cc", "debugfs"] { try TestSupport.require(tool) }
        guard FileManager.default.fileExists(atPath: "/usr/include/ntfs-3g/volume.h") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("ntfs-3g-dev is required in CI") }
            throw XCTSkip("ntfs-3g-dev is not installed")
        }
        root = try TestSupport.temporaryDirectory(self)
    }

    @discardableResult
    func sh(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try runProcess(["sh", "-c", command], environment: ["E2FSPROGS_FAKE_TIME": "1700000000"])
        XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)", file: file, line: line)
        return result.stdout
    }

    @discardableResult
    func dpm(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: data)
        XCTAssertEqual(result.status, status, "dpm \(arguments.joined(separator: " ")): \(result.stderr)", file: file, line: line)
        return result
    }

    func write(_ path: String, _ bytes: [UInt8], mtime: TimeInterval = 1_650_000_000) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: mtime)], ofItemAtPath: path)
    }

    /// Compiles the libntfs-3g helper that populates an unmounted NTFS image from a manifest.
    func ntfsPopulate() throws -> String {
        let output = root + "/ntfs_populate"
        try sh("cc -O1 -o \(output) \(TestSupport.repositoryRoot)/Tests/HyperVHostTests/Fixtures/ntfs/ntfs_populate.c "
               + "-DHAVE_STDINT_H -DHAVE_SYS_TYPES_H -DHAVE_TIME_H -I/usr/include/ntfs-3g -lntfs-3g")
        return output
    }

    /// NTFS times: 100 ns units since 1601.
    func ntfsTime(_ seconds: TimeInterval) -> String { String(UInt64((seconds + 11_644_473_600) * 10_000_000)) }

    func makeDisk() throws -> (disk: String, sources: [String: [UInt8]]) {
        var sources: [String: [UInt8]] = [:]
        // NTFS: documents, a 10 MiB file, a long Unicode name, and a page file.
        let ntfsTree = root + "/ntfs-src"
        let files: [(String, Int)] = [("docs/report.txt", 5000), ("docs/sub/データ.bin", 300_000), ("big.bin", 10 << 20),
                                      ("docs/empty.txt", 0), ("pagefile.sys", 16 << 20)]
        var manifest = "mkdir\t/docs\nmkdir\t/docs/sub\n"
        for (index, (path, size)) in files.enumerated() {
            let bytes = TestData.random(size, seed: UInt64(50 + index))
            try write(ntfsTree + "/" + path, bytes)
            sources["ntfs/" + path] = bytes
            manifest += "file\t/\(path)\t\(ntfsTree)/\(path)\n"
            manifest += "times\t/\(path)\t\(ntfsTime(1_600_000_000))\t\(ntfsTime(1_650_000_000 + Double(index)))\t\(ntfsTime(1_660_000_000))\n"
        }
        try manifest.write(toFile: root + "/manifest", atomically: true, encoding: .utf8)
        try sh("truncate -s 128M \(root)/ntfs.img && mkntfs -q -F -f -Q -L WINDOWS \(root)/ntfs.img && \(try ntfsPopulate()) \(root)/ntfs.img \(root)/manifest")

        // ext4: a home directory, permissions, a symlink, and a swap file named in /etc/fstab.
        let ext4Tree = root + "/ext4-src"
        for (index, (path, size)) in [("home/alice/notes.md", 1234), ("home/alice/photo.raw", 2 << 20), ("etc/hostname", 6)].enumerated() {
            let bytes = path == "etc/hostname" ? Array("guest\n".utf8) : TestData.random(size, seed: UInt64(60 + index))
            try write(ext4Tree + "/" + path, bytes, mtime: 1_690_000_000 + Double(index))
            sources["ext4/" + path] = bytes
        }
        try sh("chmod 0640 \(ext4Tree)/home/alice/notes.md && ln -s notes.md \(ext4Tree)/home/alice/link")
        try write(ext4Tree + "/etc/fstab", Array("/dev/sda2 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n".utf8))
        try sh("dd if=/dev/urandom of=\(ext4Tree)/swapfile bs=1M count=8 status=none && mkswap -q \(ext4Tree)/swapfile")
        try sh("mkfs.ext4 -q -F -d \(ext4Tree) \(root)/ext4.img 128M")

        // FAT32: long names.
        let fatTree = root + "/fat-src"
        for (index, (path, size)) in [("Long Name Document.txt", 7000), ("Folder With Spaces/inner file.dat", 100_000)].enumerated() {
            let bytes = TestData.random(size, seed: UInt64(70 + index))
            try write(fatTree + "/" + path, bytes)
            sources["fat/" + path] = bytes
        }
        try sh("mkfs.vfat -F 32 -n DATA -C \(root)/fat.img 98304 >/dev/null && mcopy -s -m -i \(root)/fat.img \"\(fatTree)\"/* ::/")
        try sh("truncate -s 16M \(root)/swap.img && mkswap -q \(root)/swap.img")

        // A GPT disk: each file system written at its partition's start.
        let disk = root + "/disk.raw"
        try sh("truncate -s 400M \(disk) && printf 'label: gpt\\nsize=128MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=win\\n"
               + "size=128MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=linux\\nsize=96MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=data\\n"
               + "size=16MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap\\n' | sfdisk -q \(disk)")
        let layout = try sh("sfdisk -J \(disk)")
        let table = (try JSONSerialization.jsonObject(with: Data(layout.utf8)) as? [String: Any])?["partitiontable"] as? [String: Any]
        let starts = (table?["partitions"] as? [[String: Any]] ?? []).compactMap { $0["start"] as? Int }
        XCTAssertEqual(starts.count, 4)
        for (image, start) in zip(["ntfs.img", "ext4.img", "fat.img", "swap.img"], starts) {
            try sh("dd if=\(root)/\(image) of=\(disk) bs=512 seek=\(start) conv=notrunc,sparse status=none")
        }
        try sh("qemu-img convert -f raw -O vhdx \(disk) \(root)/vm.vhdx")
        return (root + "/vm.vhdx", sources)
    }

    func testBrowseAndRecoverFilesFromNTFSExt4AndFAT32() throws {
        let (vhdx, sources) = try makeDisk()
        try dpm(["vm", "add", "guest", "--disk", vhdx])
        let backup = try XCTUnwrap(try dpm(["backup", "guest", "--json"]).json() as? [String: Any])
        let notes = (backup["notes"] as? [String] ?? []).joined(separator: "\n")
        XCTAssertTrue(notes.contains("part1:/pagefile.sys"), notes)
        XCTAssertTrue(notes.contains("swap partition part4"), notes)
        XCTAssertTrue(notes.contains("part2:/swapfile"), notes)
        XCTAssertGreaterThan(backup["chunks_excluded"] as? Int ?? 0, 0, "the 16 MiB page file fills whole chunks")

        func browse(_ path: String) throws -> [[String: Any]] {
            let listing = try XCTUnwrap(try dpm(["browse", "guest", path, "--json"]).json() as? [String: Any])
            return listing["entries"] as? [[String: Any]] ?? []
        }
        XCTAssertEqual(try browse("/").compactMap { $0["name"] as? String }, ["disk0"])
        XCTAssertEqual(try browse("/disk0").compactMap { $0["name"] as? String }, ["part1", "part2", "part3", "part4"])
        let ntfsRoot = try browse("/disk0/part1")
        XCTAssertEqual(Set(ntfsRoot.compactMap { $0["name"] as? String }), ["docs", "big.bin", "pagefile.sys"])
        XCTAssertEqual(ntfsRoot.first { $0["name"] as? String == "big.bin" }?["size"] as? Int, 10 << 20)
        XCTAssertEqual(Set(try browse("/disk0/part1/docs/sub").compactMap { $0["name"] as? String }), ["データ.bin"])
        XCTAssertEqual(Set(try browse("/disk0/part3").compactMap { $0["name"] as? String }), ["Long Name Document.txt", "Folder With Spaces"])
        XCTAssertEqual(try dpm(["browse", "guest", "/disk0/part4"], status: 1).stderr.contains("swap"), true)

        let out = root + "/recovered"
        let extract = try XCTUnwrap(try dpm(["recover", "guest", "--to-folder", out, "--item", "/disk0/part1/docs", "--item", "/disk0/part1/big.bin",
                                             "--item", "/disk0/part2/home", "--item", "/disk0/part3/Folder With Spaces",
                                             "--item", "/disk0/part1/pagefile.sys", "--json"]).json() as? [String: Any])
        XCTAssertGreaterThan(extract["files"] as? Int ?? 0, 5)
        func recovered(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/" + path))) }
        XCTAssertEqual(try recovered("docs/report.txt"), sources["ntfs/docs/report.txt"])
        XCTAssertEqual(try recovered("docs/sub/データ.bin"), sources["ntfs/docs/sub/データ.bin"])
        XCTAssertEqual(try recovered("docs/empty.txt"), [])
        XCTAssertEqual(try recovered("big.bin"), sources["ntfs/big.bin"])
        XCTAssertEqual(try recovered("home/alice/notes.md"), sources["ext4/home/alice/notes.md"])
        XCTAssertEqual(try recovered("home/alice/photo.raw"), sources["ext4/home/alice/photo.raw"])
        XCTAssertEqual(try recovered("Folder With Spaces/inner file.dat"), sources["fat/Folder With Spaces/inner file.dat"])
        // The excluded page file comes back as zeros, at its size.
        let pagefile = try recovered("pagefile.sys")
        XCTAssertEqual(pagefile.count, 16 << 20)
        XCTAssertTrue(pagefile.allSatisfy { $0 == 0 })
        // Times and permissions.
        let attributes = try FileManager.default.attributesOfItem(atPath: out + "/docs/report.txt")
        XCTAssertEqual((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0, 1_650_000_000, accuracy: 0.001)
        let notes2 = try FileManager.default.attributesOfItem(atPath: out + "/home/alice/notes.md")
        XCTAssertEqual((notes2[.posixPermissions] as? Int) ?? 0, 0o640)
        XCTAssertEqual((notes2[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0, 1_690_000_000, accuracy: 1)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/home/alice/link"), "notes.md")
        let fatFile = try FileManager.default.attributesOfItem(atPath: out + "/Folder With Spaces/inner file.dat")
        XCTAssertEqual((fatFile[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0, 1_650_000_000 + 1, accuracy: 2)

        // A whole volume as a raw image equals the FAT32 image written into the disk.
        try dpm(["recover", "guest", "--to-folder", root + "/volume", "--item", "/disk0/part3"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: root + "/volume/disk0-part3.img")),
                       try Data(contentsOf: URL(fileURLWithPath: root + "/fat.img")))
        // The recovery is a job with its progress.
        let jobs = try XCTUnwrap(try dpm(["jobs", "list", "--json"]).json() as? [[String: Any]])
        XCTAssertTrue(jobs.contains { $0["kind"] as? String == "item-recovery" && $0["state"] as? String == "succeeded" })
    }

    func testAnMBRDiskWithLogicalPartitions() throws {
        // MBR: a primary FAT32 and an ext4 in a logical partition of an extended one.
        let fatTree = root + "/mbr-fat", ext4Tree = root + "/mbr-ext4"
        let fatBytes = TestData.random(70_000, seed: 81), ext4Bytes = TestData.random(90_000, seed: 82)
        try write(fatTree + "/Readme First.txt", fatBytes)
        try write(ext4Tree + "/srv/data.bin", ext4Bytes, mtime: 1_700_000_123)
        try sh("mkfs.vfat -F 32 -C \(root)/mbr-fat.img 66000 >/dev/null && mcopy -s -m -i \(root)/mbr-fat.img \"\(fatTree)\"/* ::/")
        try sh("mkfs.ext4 -q -F -d \(ext4Tree) \(root)/mbr-ext4.img 48M")
        let disk = root + "/mbr.raw"
        try sh("truncate -s 160M \(disk) && printf 'label: dos\\nsize=66MiB, type=c\\ntype=5\\nsize=48MiB, type=83\\n' | sfdisk -q \(disk)")
        let table = (try JSONSerialization.jsonObject(with: Data(try sh("sfdisk -J \(disk)").utf8)) as? [String: Any])?["partitiontable"] as? [String: Any]
        let partitions = table?["partitions"] as? [[String: Any]] ?? []
        XCTAssertEqual(partitions.count, 3)
        let fatStart = try XCTUnwrap(partitions.first?["start"] as? Int), ext4Start = try XCTUnwrap(partitions.last?["start"] as? Int)
        try sh("dd if=\(root)/mbr-fat.img of=\(disk) bs=512 seek=\(fatStart) conv=notrunc status=none")
        try sh("dd if=\(root)/mbr-ext4.img of=\(disk) bs=512 seek=\(ext4Start) conv=notrunc status=none")
        try sh("qemu-img convert -f raw -O vhdx \(disk) \(root)/mbr.vhdx")
        try dpm(["vm", "add", "mbr", "--disk", root + "/mbr.vhdx"])
        try dpm(["backup", "mbr"])
        let volumes = try XCTUnwrap(try dpm(["browse", "mbr", "/disk0", "--json"]).json() as? [String: Any])["entries"] as? [[String: Any]]
        XCTAssertEqual(volumes?.compactMap { $0["name"] as? String }, ["part1", "part5"])
        let out = root + "/mbr-out"
        try dpm(["recover", "mbr", "--to-folder", out, "--item", "/disk0/part1/Readme First.txt", "--item", "/disk0/part5/srv"])
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/Readme First.txt"))), fatBytes)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/srv/data.bin"))), ext4Bytes)
        let modified = try FileManager.default.attributesOfItem(atPath: out + "/srv/data.bin")[.modificationDate] as? Date
        XCTAssertEqual(modified?.timeIntervalSince1970 ?? 0, 1_700_000_123, accuracy: 1)
    }

    func testHostileNamesNeverEscapeTheRecoveryFolder() throws {
        // Make an ext4 volume with placeholder names, then rewrite them in the image into
        // names no recovery may use as they are: "..", "/etc/" (absolute), "a/b" (nested),
        // an embedded NUL, a device name, and control characters.
        let tree = root + "/hostile"
        let placeholders = ["AAAAA", "BBBBB", "CCCCC", "DDDDD", "EEEEE"]
        for name in placeholders { try write(tree + "/dir/" + name, Array(name.utf8)) }
        try write(tree + "/dir/CON", Array("con".utf8))
        try write(tree + "/dir/" + String(repeating: "é", count: 127), Array("long".utf8))
        try sh("mkfs.ext4 -q -F -O ^metadata_csum -d \(tree) \(root)/hostile.img 32M")
        var image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/hostile.img")))
        let replacements: [(String, [UInt8])] = [("AAAAA", Array("..\0..".utf8)), ("BBBBB", Array("/etc/".utf8)), ("CCCCC", Array("a/../".utf8)),
                                                 ("DDDDD", [0x61, 0, 0x62, 0x63, 0x64]), ("EEEEE", [0x1b, 0x5b, 0x32, 0x4a, 0x07])]
        for (placeholder, replacement) in replacements {
            let needle = Array(placeholder.utf8)
            var found = 0
            var index = 0
            while index <= image.count - needle.count {
                // Only directory entries: the name follows rec_len, name_len and file_type.
                if image[index] == needle[0], Array(image[index..<index + needle.count]) == needle, index >= 8, image[index - 2] == UInt8(needle.count) {
                    image.replaceSubrange(index..<index + needle.count, with: replacement)
                    found += 1
                }
                index += 1
            }
            XCTAssertEqual(found, 1, "placeholder \(placeholder) in a directory entry")
        }
        let raw = root + "/hostile.raw"
        try Data(image).write(to: URL(fileURLWithPath: raw))
        try dpm(["vm", "add", "hostile", "--disk", raw])
        try dpm(["backup", "hostile"])
        let sentinel = root + "/outside"
        try FileManager.default.createDirectory(atPath: sentinel, withIntermediateDirectories: true)
        let out = sentinel + "/recovered"
        let reply = try XCTUnwrap(try dpm(["recover", "hostile", "--to-folder", out, "--item", "/disk0/volume/dir", "--json"]).json() as? [String: Any])
        let renamed = (reply["renamed"] as? [[String: String]] ?? []).compactMap { $0["to"] }
        XCTAssertGreaterThanOrEqual(renamed.count, 6, "\(reply)")
        // Nothing appeared outside the recovery folder, and everything inside is a plain name.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: sentinel), ["recovered"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/etc/etc"))
        let inside = try FileManager.default.contentsOfDirectory(atPath: out + "/dir")
        XCTAssertEqual(inside.count, 7, "\(inside)")
        for name in inside {
            XCTAssertFalse(name.contains("/") || name == ".." || name == "." || name.utf8.contains(0) || name.utf8.contains(0x1b), name)
            XCTAssertLessThanOrEqual(name.utf8.count, 255)
        }
        XCTAssertTrue(inside.contains("_CON"))
        let contents = Set(try inside.map { String(decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/dir/" + $0)), as: UTF8.self) })
        XCTAssertEqual(contents, Set(placeholders + ["con", "long"]))
    }
}

/// Item recovery reads only what it needs: one 10 MiB file out of a 4 GiB disk.
final class ItemRecoveryReadsTests: XCTestCase {
    func testExtractingOneFileFromA4GiBDiskReadsUnder2PercentOfItsChunks() throws {
        for tool in ["qemu-img", "mkfs.ext4", "openssl"] { try TestSupport.require(tool) }
        let root = try TestSupport.temporaryDirectory(self)
        let data = root + "/data"
        // 1.5 GiB of incompressible files around the one we want, on a 4 GiB ext4 disk.
        let tree = root + "/tree"
        let script = """
        set -e
        mkdir -p \(tree)/bulk \(tree)/wanted
        for n in 1 2 3 4 5 6; do openssl enc -aes-128-ctr -pass pass:n$n -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c 256M > \(tree)/bulk/f$n; done
        openssl enc -aes-128-ctr -pass pass:wanted -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c 10M > \(tree)/wanted/file.bin
        mkfs.ext4 -q -F -d \(tree) \(root)/disk.raw 4G
        qemu-img convert -f raw -O vhdx \(root)/disk.raw \(root)/disk.vhdx
        rm \(root)/disk.raw
        """
        let made = try runProcess(["sh", "-c", script])
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertEqual(try DPM.run(["vm", "add", "big", "--disk", root + "/disk.vhdx"], dataDirectory: data).status, 0)
        let backup = try DPM.run(["backup", "big"], dataDirectory: data)
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let result = try DPM.run(["recover", "big", "--to-folder", root + "/out", "--item", "/disk0/volume/wanted/file.bin", "--json"],
                                 dataDirectory: data)
        XCTAssertEqual(result.status, 0, result.stderr)
        let reply = try XCTUnwrap(try result.json() as? [String: Any])
        let read = try XCTUnwrap(reply["chunks_read"] as? Int)
        let total = try XCTUnwrap(reply["chunks_total"] as? Int)
        XCTAssertEqual(total, 1024, "a 4 GiB disk in 4 MiB chunks")
        XCTAssertLessThan(Double(read) / Double(total), 0.02, "read \(read) of \(total) chunks")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: root + "/out/file.bin")),
                       try Data(contentsOf: URL(fileURLWithPath: root + "/tree/wanted/file.bin")))
    }
}
