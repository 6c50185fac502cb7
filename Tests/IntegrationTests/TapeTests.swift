import Foundation
import TestSupport
import XCTest

/// Long-term protection on tape end to end through `dpm`: a VM's recovery point copied to a
/// virtual tape library, its disk point pruned and gc'd, then recovered from tape to every
/// target; GNU tar, zstd and OpenSSL read the tapes without dpm; a new server recatalogs
/// them; faults name the tape, file and point.
final class TapeTests: XCTestCase {
    var root = ""
    var data: String { root + "/data" }
    var vtl: String { root + "/vtl" }
    var disk: String { root + "/vm/app.vhdx" }
    let passphrase = "correct horse battery staple"

    override func setUpWithError() throws {
        for tool in ["qemu-img", "qemu-io", "sfdisk", "mkfs.ext4", "tar", "zstd", "sha256sum", "openssl", "xxd", "od"] { try TestSupport.require(tool) }
        root = try TestSupport.temporaryDirectory(self)
    }

    var environment: [String: String] { ["DPM_TEST_MODE": "1"] }

    @discardableResult
    func dpm(_ arguments: [String], status: Int32 = 0, dataDirectory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: dataDirectory ?? data, environment: environment)
        XCTAssertEqual(result.status, status, "dpm \(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)", file: file, line: line)
        return result
    }

    func json(_ arguments: [String], dataDirectory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try dpm(arguments + ["--json"], dataDirectory: dataDirectory, file: file, line: line).json() as? [String: Any], file: file, line: line)
    }

    @discardableResult
    func sh(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try runProcess(["sh", "-c", command], environment: ["E2FSPROGS_FAKE_TIME": "1700000000"])
        XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)", file: file, line: line)
        return result.stdout
    }

    /// A GPT disk with one ext4 volume holding `files`, plus `noise` MiB of random data past
    /// the volume (so chunks do not compress away), as a VHDX.
    func makeVM(files: [String: [UInt8]] = ["home/ann/report.txt": Array("quarterly numbers\n".utf8)], noise: Int = 6) throws {
        let tree = root + "/tree"
        for (path, bytes) in files {
            try FileManager.default.createDirectory(atPath: (tree + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: tree + "/" + path))
        }
        try FileManager.default.createDirectory(atPath: root + "/vm", withIntermediateDirectories: true)
        let raw = root + "/vm/app.raw"
        try sh("mkfs.ext4 -q -F -d \(tree) \(root)/ext4.img 24M && truncate -s 48M \(raw) "
               + "&& printf 'label: gpt\\nstart=2048, size=49152, type=linux\\n' | sfdisk -q \(raw) "
               + "&& dd if=\(root)/ext4.img of=\(raw) bs=1M seek=1 conv=notrunc status=none "
               + "&& head -c \(noise)M /dev/urandom | dd of=\(raw) bs=1M seek=30 conv=notrunc status=none "
               + "&& qemu-img convert -q -f raw -O vhdx -o block_size=1M \(raw) \(disk) && rm \(raw)")
        try dpm(["vm", "add", "app", "--disk", disk])
    }

    func addLibrary(capacity: String = "256M", slots: Int = 6, drives: Int = 1, tapes: [String] = ["A00001L8", "A00002L8"]) throws {
        try dpm(["tape", "library", "add", "vtl1", "--kind", "vtl", "--dir", vtl, "--slots", "\(slots)", "--drives", "\(drives)", "--capacity", capacity])
        try dpm(["config", "set", "tape-library.wait_seconds", "1"])
        for (number, barcode) in tapes.enumerated() { try dpm(["tape", "insert", barcode, "--slot", "\(number + 1)"]) }
    }

    func points() throws -> [[String: Any]] { try json(["rp", "list", "app"])["recovery_points"] as? [[String: Any]] ?? [] }
    func copies(dataDirectory: String? = nil) throws -> [[String: Any]] {
        try json(["rp", "list", "app"], dataDirectory: dataDirectory)["long_term_copies"] as? [[String: Any]] ?? []
    }

    /// Counters of one cartridge, from the library's inventory.
    func cartridge(_ barcode: String) throws -> [String: Any] {
        let inventory = try json(["tape", "library", "inventory"])
        return try XCTUnwrap((inventory["cartridges"] as? [[String: Any]])?.first { $0["barcode"] as? String == barcode })
    }

    func testCopyOnTapeRecoversToEveryTargetOnceTheDiskPointIsGone() throws {
        try makeVM()
        try addLibrary()
        try sh("cp \(disk) \(root)/original.vhdx")
        let point = try XCTUnwrap(try json(["backup", "app"])["recovery_point"] as? [String: Any])
        let rp = try XCTUnwrap(point["id"] as? String)
        let copy = try json(["tape", "copy", "app", "--retention", "7y"])
        let location = try XCTUnwrap((copy["copy"] as? [String: Any])?["location"] as? String)
        XCTAssertTrue(location.hasPrefix("A0000"), location)

        // The disk point goes, and gc frees its chunks: only the tape holds the point now.
        try dpm(["rp", "delete", "app", "--rp", rp])
        try dpm(["gc", "--grace", "0"])
        XCTAssertTrue(try points().isEmpty)
        let listed = try copies()
        XCTAssertEqual(listed.map { $0["rp_id"] as? String }, [rp])
        XCTAssertEqual(listed.first?["location"] as? String, location)
        XCTAssertTrue(try dpm(["rp", "list", "app"]).stdout.contains(location))

        // --copy-disks, staged from tape: byte-identical, and the job says what tape it read.
        let recovered = try json(["recover", "app", "--rp", rp, "--copy-disks", root + "/copy"])
        let staged = try XCTUnwrap(recovered["staged_from"] as? [String: Any])
        XCTAssertEqual(staged["tier"] as? String, "tape-library")
        XCTAssertGreaterThan(staged["bytes_read"] as? Int ?? 0, 0)
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/copy/app.vhdx", root + "/original.vhdx"]).status, 0)
        // --alternate, in another format.
        try dpm(["recover", "app", "--rp", rp, "--alternate", root + "/alt", "--format", "raw"])
        let alternate = try XCTUnwrap(FileManager.default.enumerator(atPath: root + "/alt")?.compactMap { $0 as? String }.first { $0.hasSuffix(".raw") })
        XCTAssertEqual(try runProcess(["qemu-img", "compare", "-f", "raw", root + "/alt/" + alternate, root + "/original.vhdx"]).status, 0)
        // --original, over a changed disk.
        XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x66 0 8M", disk]).status, 0)
        try dpm(["recover", "app", "--rp", rp, "--original"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", disk, root + "/original.vhdx"]).status, 0)
        // Items: browse the volume inside the point, and copy one file out.
        XCTAssertTrue(try dpm(["browse", "app", "/disk0/part1/home/ann", "--rp", rp]).stdout.contains("report.txt"))
        try dpm(["recover", "app", "--rp", rp, "--to-folder", root + "/items", "--item", "/disk0/part1/home/ann/report.txt"])
        XCTAssertEqual(try String(contentsOfFile: root + "/items/report.txt", encoding: .utf8), "quarterly numbers\n")

        // GNU tar reads the tape without dpm: every file lists, and a chunk decompresses with
        // zstd to bytes whose SHA-256 is its name.
        let barcode = String(location.prefix(8))
        let map = try json(["tape", "export", barcode, "--file", "0", "--to", root + "/file0.tar"])
        XCTAssertGreaterThan(map["bytes"] as? Int ?? 0, 0)
        XCTAssertTrue(try sh("tar -b 512 -tvf \(root)/file0.tar").contains("dpm-tape/README.txt"))
        try dpm(["tape", "export", barcode, "--file", "1", "--to", root + "/file1.tar"])
        let listing = try sh("tar -b 512 -tvf \(root)/file1.tar")
        XCTAssertTrue(listing.contains("ARCHIVE.json") && listing.contains("index.dpmidx"), listing)
        try sh("mkdir -p \(root)/x && tar -b 512 -xf \(root)/file1.tar -C \(root)/x")
        let folder = try XCTUnwrap(try sh("find \(root)/x -name ARCHIVE.json").split(separator: "\n").first.map { ($0 as NSString).deletingLastPathComponent })
        let chunks = try FileManager.default.contentsOfDirectory(atPath: folder + "/chunks")
        XCTAssertGreaterThan(chunks.count, 3)
        for chunk in chunks.prefix(4) {
            let name = String(chunk.dropLast(4))
            XCTAssertEqual(try sh("zstd -dc \(folder)/chunks/\(chunk) | sha256sum").prefix(64), Substring(name))
        }
        // The label's README rebuilds the disk with od, head and zstd alone.
        let readme = try sh("tar -b 512 -xOf \(root)/file0.tar dpm-tape/README.txt")
        let recipe = try XCTUnwrap(Self.rebuildRecipe(readme))
        try sh("cd \(folder) && \(recipe.replacingOccurrences(of: "cd dpm/DS/RP; ", with: ""))")
        XCTAssertEqual(try runProcess(["qemu-img", "compare", "-f", "raw", folder + "/disk.raw", root + "/original.vhdx"]).status, 0)
    }

    /// The shell lines of step 3 of the label's README (from `cd` to `done > disk.raw`).
    static func rebuildRecipe(_ readme: String) -> String? {
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let start = lines.firstIndex(where: { $0.hasPrefix("cd dpm/DS/RP") }),
              let end = lines[start...].firstIndex(where: { $0.hasPrefix("done > disk.raw") }) else { return nil }
        return lines[start...end].joined(separator: "\n")
    }

    func testEncryptedCopiesNeedThePassphraseAndNeverShareATapeWithPlainOnes() throws {
        try makeVM()
        try addLibrary(tapes: ["A00001L8", "A00002L8", "A00003L8"])
        try "\(passphrase)\n".write(toFile: root + "/pass", atomically: true, encoding: .utf8)
        try "not the passphrase\n".write(toFile: root + "/wrong", atomically: true, encoding: .utf8)
        try dpm(["config", "set", "tiers.passphrase_file", root + "/pass"])
        try dpm(["group", "create", "secure", "--members", "app", "--tape", "on", "--tape-retention", "1y", "--colocate", "on", "--encryption", "on"])
        try sh("cp \(disk) \(root)/original.vhdx")
        try dpm(["backup", "app"])
        let encrypted = try XCTUnwrap(try json(["tape", "copy", "app"])["copy"] as? [String: Any])
        XCTAssertNotNil(encrypted["key_fingerprint"])
        // An unencrypted copy of the same point (overriding the group) goes to another tape.
        let plain = try XCTUnwrap(try json(["tape", "copy", "app", "--encrypt", "off"])["copy"] as? [String: Any])
        let encryptedTape = String((encrypted["location"] as? String ?? "").prefix(8)), plainTape = String((plain["location"] as? String ?? "").prefix(8))
        XCTAssertNotEqual(encryptedTape, plainTape)
        let tapes = try XCTUnwrap(try json(["tape", "list"])["tapes"] as? [[String: Any]])
        XCTAssertEqual(tapes.first { $0["barcode"] as? String == encryptedTape }?["encrypted"] as? Bool, true)
        XCTAssertEqual(tapes.first { $0["barcode"] as? String == plainTape }?["encrypted"] as? Bool, false)

        // Only the tape: a wrong passphrase is refused, naming the fix; the right one restores.
        let rp = try XCTUnwrap(encrypted["rp_id"] as? String), name = try XCTUnwrap(encrypted["name"] as? String)
        try dpm(["rp", "delete", "app", "--rp", rp])
        try dpm(["gc", "--grace", "0"])
        // --rp takes a copy's name too, to choose between two copies of one point.
        let refused = try dpm(["recover", "app", "--rp", name, "--from", "tape", "--copy-disks", root + "/bad", "--passphrase-file", root + "/wrong"], status: 1)
        XCTAssertTrue(refused.stderr.contains("passphrase does not unlock") && refused.stderr.contains("--passphrase-file"), refused.stderr)
        try dpm(["recover", "app", "--rp", name, "--from", "tape", "--copy-disks", root + "/good"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/good/app.vhdx", root + "/original.vhdx"]).status, 0)

        // The label's README decrypts a chunk with the OpenSSL command line alone.
        let file = (encrypted["location"] as? String ?? "").components(separatedBy: "file ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 1
        try dpm(["tape", "export", encryptedTape, "--file", "0", "--to", root + "/label.tar"])
        try dpm(["tape", "export", encryptedTape, "--file", "\(file)", "--to", root + "/point.tar"])
        try sh("mkdir -p \(root)/e && tar -b 512 -xf \(root)/label.tar -C \(root)/e && tar -b 512 -xf \(root)/point.tar -C \(root)/e")
        let label = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/e/dpm-tape/label.json"))) as? [String: Any])
        let wrapped = try XCTUnwrap((label["encryption"] as? [String: Any])?["wrapped_key"] as? [String: Any])
        let chunk = try XCTUnwrap(try sh("find \(root)/e -name '*.zst.aes' | head -1").split(separator: "\n").first.map(String.init))
        let chunkName = String((chunk as NSString).lastPathComponent.dropLast(".zst.aes".count))
        let script = """
            set -e
            KEK=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt pass:"\(passphrase)" -kdfopt hexsalt:\(wrapped["salt"] as? String ?? "") -kdfopt iter:\(wrapped["iterations"] as? Int ?? 0) PBKDF2 | tr -d :)
            MASTER=$(echo \(wrapped["wrapped"] as? String ?? "") | xxd -r -p | openssl enc -d -aes-256-ctr -K $KEK -iv \(wrapped["nonce"] as? String ?? "")00000002 | xxd -p -c 64)
            KEY=$(printf 'dpm chunk encryption' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$MASTER -r | cut -c1-64)
            NK=$(printf 'dpm chunk digest' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$MASTER -r | cut -c1-64)
            f=\(chunk); IV=$(head -c 12 $f | xxd -p)
            tail -c +13 $f | head -c -16 | openssl enc -d -aes-256-ctr -K $KEY -iv ${IV}00000002 | zstd -d > \(root)/chunk
            openssl dgst -sha256 -mac HMAC -macopt hexkey:$NK -r \(root)/chunk | cut -c1-64
            """
        XCTAssertEqual(try sh(script).trimmingCharacters(in: .whitespacesAndNewlines), chunkName)
        let readme = try String(contentsOfFile: root + "/e/dpm-tape/README.txt", encoding: .utf8)
        for line in ["openssl kdf -keylen 32", "-aes-256-ctr", "'dpm chunk encryption'", "'dpm chunk digest'"] {
            XCTAssertTrue(readme.contains(line), "the README's recipe lacks \(line)")
        }
    }

    func testANewServerRecatalogsTheTapeAndRestoresFromIt() throws {
        try makeVM()
        try addLibrary()
        try sh("cp \(disk) \(root)/original.vhdx")
        try dpm(["backup", "app"])
        let copy = try XCTUnwrap(try json(["tape", "copy", "app"])["copy"] as? [String: Any])
        let barcode = String((copy["location"] as? String ?? "").prefix(8))
        // A fresh data directory, as on a replacement server: attach the library, recatalog.
        let fresh = root + "/fresh"
        try dpm(["tape", "library", "add", "vtl1", "--kind", "vtl", "--dir", vtl], dataDirectory: fresh)
        let recatalog = try json(["tape", "recatalog", barcode], dataDirectory: fresh)
        XCTAssertEqual((recatalog["copies"] as? [[String: Any]])?.count, 1)
        let found = try copies(dataDirectory: fresh)
        XCTAssertEqual(found.map { $0["rp_id"] as? String }, [copy["rp_id"] as? String])
        try dpm(["recover", "app", "--rp", "latest", "--from", "tape", "--copy-disks", root + "/restored"], dataDirectory: fresh)
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/restored/app.vhdx", root + "/original.vhdx"]).status, 0)
        // Written by another server: imported, and never overwritten until marked free.
        let tapes = try XCTUnwrap(try json(["tape", "list"], dataDirectory: fresh)["tapes"] as? [[String: Any]])
        XCTAssertEqual(tapes.first { $0["barcode"] as? String == barcode }?["state"] as? String, "imported")
    }

    func testOnePointOfTenReadsOnlyItsFileAndAReadErrorNamesTapeFileAndPoint() throws {
        try makeVM(noise: 2)
        try addLibrary(capacity: "512M", tapes: ["A00001L8"])
        try dpm(["group", "create", "g", "--members", "app", "--tape", "on", "--tape-retention", "1y", "--colocate", "on"])
        var states: [(rp: String, location: String, image: String)] = []
        for round in 0..<10 {
            XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x\(String(0x40 + round, radix: 16)) \(40 + round % 4)M 1M", disk]).status, 0)
            let point = try XCTUnwrap(try json(["backup", "app"])["recovery_point"] as? [String: Any])
            let copy = try XCTUnwrap(try json(["tape", "copy", "app"])["copy"] as? [String: Any])
            let image = root + "/state-\(round).vhdx"
            try sh("cp \(disk) \(image)")
            states.append((point["id"] as? String ?? "", copy["location"] as? String ?? "", image))
        }
        XCTAssertEqual(Set(states.map { $0.location.prefix(8) }), ["A00001L8"], "co-located copies share one tape")
        let before = try cartridge("A00001L8")
        let tapeBytes = before["used_bytes"] as? Int ?? 0
        let target = states[6]
        let recovered = try json(["recover", "app", "--rp", target.rp, "--from", "tape", "--copy-disks", root + "/seven"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/seven/app.vhdx", target.image]).status, 0)
        let read = (try cartridge("A00001L8")["bytes_read"] as? Int ?? 0) - (before["bytes_read"] as? Int ?? 0)
        let archive = (recovered["staged_from"] as? [String: Any])?["bytes_read"] as? Int ?? 0
        XCTAssertGreaterThan(read, 0)
        XCTAssertLessThan(read, archive + (2 << 20), "only the point's own file is read (plus record padding)")
        XCTAssertLessThan(read, tapeBytes / 4, "far less than the tape: \(read) of \(tapeBytes)")

        // A read error inside the third point's file names the tape, the file and the point;
        // the others still restore.
        let third = states[2]
        let fileNumber = Int(third.location.components(separatedBy: "file ").last ?? "") ?? 0
        let files = try vtlMap("A00001L8")
        let block = try XCTUnwrap(files.first { $0["file"] as? Int == fileNumber }?["first_block"] as? Int) + 1
        try dpm(["tape", "library", "fault", "vtl1", "--barcode", "A00001L8", "--read-error-at-block", "\(block)"])
        let failed = try dpm(["recover", "app", "--rp", third.rp, "--from", "tape", "--copy-disks", root + "/third"], status: 1)
        XCTAssertTrue(failed.stderr.contains("A00001L8") && failed.stderr.contains("file \(fileNumber)") && failed.stderr.contains(third.rp), failed.stderr)
        try dpm(["recover", "app", "--rp", states[8].rp, "--from", "tape", "--copy-disks", root + "/ninth"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/ninth/app.vhdx", states[8].image]).status, 0)
    }

    /// The files of a cartridge: number, first block, records, bytes.
    func vtlMap(_ barcode: String) throws -> [[String: Any]] {
        try json(["tape", "map", barcode])["files"] as? [[String: Any]] ?? []
    }

    func testNoUsableTapeFailsNamingThePoolAndAKilledCopyLeavesTheTapeUsable() throws {
        try makeVM(noise: 4)
        try addLibrary(tapes: [])
        try dpm(["config", "set", "tape-library.wait_seconds", "1"])
        try dpm(["backup", "app"])
        let refused = try dpm(["tape", "copy", "app"], status: 1)
        XCTAssertTrue(refused.stderr.contains("pool 'default'") && refused.stderr.contains("dpm tape mark-free")
                      && refused.stderr.contains("dpm tape insert BARCODE --library vtl1 --mail-slot 1"), refused.stderr)
        XCTAssertTrue(try copies().isEmpty)

        // A copy killed half-way (SIGKILL, as a power cut) lists nothing; the next one writes.
        try dpm(["tape", "insert", "A00001L8", "--slot", "1"])
        let killed = try DPM.run(["tape", "copy", "app"], dataDirectory: data, environment: environment.merging(["DPM_CRASH_AT": "tier.chunk-archived:3"]) { $1 })
        XCTAssertEqual(killed.status, 9, "the crash point kills the copy: \(killed.stderr)")
        XCTAssertTrue(try copies().isEmpty, "a half-written copy is never listed")
        let copy = try XCTUnwrap(try json(["tape", "copy", "app"])["copy"] as? [String: Any])
        XCTAssertTrue((copy["location"] as? String ?? "").hasPrefix("A00001L8"))
        try dpm(["recover", "app", "--rp", "latest", "--from", "tape", "--copy-disks", root + "/after-kill"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/after-kill/app.vhdx", disk]).status, 0)
    }

    func testAPointSpanningTwoTapesRestoresAndTarMJoinsTheSplitMember() throws {
        try makeVM(noise: 12)
        try addLibrary(capacity: "10M", tapes: ["A00001L8"])
        try dpm(["backup", "app"])
        // One tape is not enough: the copy fails, and the tape it filled is given back.
        let short = try dpm(["tape", "copy", "app"], status: 1)
        XCTAssertTrue(short.stderr.contains("no usable tape"), short.stderr)
        XCTAssertTrue(try copies().isEmpty)
        let tapes = try XCTUnwrap(try json(["tape", "list"])["tapes"] as? [[String: Any]])
        XCTAssertEqual(tapes.first { $0["barcode"] as? String == "A00001L8" }?["state"] as? String, "free",
                       "a span cut short must not leave a tape full of a copy that was never listed: \(tapes)")
        for (slot, barcode) in [(2, "A00002L8"), (3, "A00003L8")] { try dpm(["tape", "insert", barcode, "--slot", "\(slot)"]) }
        let copy = try XCTUnwrap(try json(["tape", "copy", "app"])["copy"] as? [String: Any])
        let volumes = try XCTUnwrap(copy["volumes"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(volumes.count, 2, "12 MiB of random data does not fit one 10 MiB tape: \(copy)")
        try dpm(["recover", "app", "--rp", "latest", "--from", "tape", "--copy-disks", root + "/spanned"])
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/spanned/app.vhdx", disk]).status, 0)
        var files: [String] = []
        for (number, volume) in volumes.prefix(2).enumerated() {
            let path = root + "/v\(number).tar"
            try dpm(["tape", "export", volume["medium"] as? String ?? "", "--file", "\(volume["file"] as? Int ?? 0)", "--to", path])
            files.append(path)
        }
        try sh("mkdir -p \(root)/m && cd \(root)/m && tar -b 512 -M -x -f \(files[0]) -f \(files[1])")
        let chunks = try sh("find \(root)/m -name '*.zst'").split(separator: "\n")
        XCTAssertGreaterThan(chunks.count, 2)
        for chunk in chunks {
            let name = ((chunk as NSString).lastPathComponent as NSString).deletingPathExtension
            XCTAssertEqual(try sh("zstd -dc \(chunk) | sha256sum").prefix(64), Substring(name), "chunk \(name) joined across the tapes")
        }
    }
}

/// Tape copies run from the shared scheduler: they appear in the day's plan and `dpm server`
/// runs them at their time, recording a long-term copy.
final class ScheduledTapeCopyTests: XCTestCase {
    func testTheServerRunsScheduledTapeCopiesAndThePlanShowsThem() throws {
        try TestSupport.require("qemu-img")
        let root = try TestSupport.temporaryDirectory(self)
        let data = root + "/data"
        let environment = ["DPM_TEST_MODE": "1"]
        func dpm(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
            let result = try DPM.run(arguments, dataDirectory: data, environment: environment)
            XCTAssertEqual(result.status, 0, "dpm \(arguments.joined(separator: " ")): \(result.stderr)", file: file, line: line)
            return result
        }
        let disk = root + "/app.vhdx"
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", disk, "32M"]).status, 0)
        XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 0 3M", disk]).status, 0)
        try dpm(["vm", "add", "app", "--disk", disk])
        try dpm(["tape", "library", "add", "vtl1", "--kind", "vtl", "--dir", root + "/vtl", "--slots", "2", "--capacity", "64M"])
        try dpm(["tape", "insert", "A00001L8", "--slot", "1"])
        // The tape copy is due 30 scheduled minutes from now: 6 s at 300× speed.
        let now = Date()
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let due = calendar.dateComponents([.hour, .minute], from: now.addingTimeInterval(30 * 60))
        let time = String(format: "%02d:%02d", due.hour ?? 0, due.minute ?? 0)
        try dpm(["group", "create", "g", "--members", "app", "--sync", "720", "--express-full-times", "", "--tape", "on",
                 "--tape-frequency", "daily", "--tape-retention", "1m", "--tape-time", time])
        let day = calendar.dateComponents([.year, .month, .day], from: now.addingTimeInterval(30 * 60))
        let plan = try XCTUnwrap(try dpm(["schedule", "show", "--json", "--day",
                                          String(format: "%04d-%02d-%02d", day.year ?? 0, day.month ?? 0, day.day ?? 0)]).json() as? [String: Any])
        XCTAssertEqual((plan["by_kind"] as? [String: Int])?["tape-copy"], 1, "the day's plan shows the daily tape copy: \(plan)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        process.arguments = ["server", "--data-dir", data, "--tick", "0.2", "--time-scale", "300", "--time-anchor", ISO8601DateFormatter().string(from: now)]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
        var copied = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !copied {
            usleep(300_000)
            let jobs = try dpm(["jobs", "list", "--json", "--limit", "100"]).json() as? [[String: Any]] ?? []
            copied = jobs.contains { $0["kind"] as? String == "tape-copy" && $0["state"] as? String == "succeeded" }
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let jobs = try dpm(["jobs", "list"]).stdout
        XCTAssertTrue(copied, "the scheduled tape copy ran: \(jobs)")
        let list = try XCTUnwrap(try dpm(["rp", "list", "app", "--json"]).json() as? [String: Any])
        XCTAssertEqual((list["long_term_copies"] as? [[String: Any]])?.first?["tier"] as? String, "tape-library")
    }
}
