import Foundation
import TestSupport
import XCTest

/// The initial replica's check, through the dpm binary: it re-reads every chunk from storage
/// once the chunks are durable, decodes and re-hashes it; the point is listed unverified until
/// the check ends, then verified, or damaged (exit 3, the report says so) when a chunk changed
/// between its write and its check, even when the change is only on the disk, under a page the
/// page cache still holds intact.
final class ReplicaVerificationTests: XCTestCase {
    var deployment: ExampleFilesDeployment!

    override func setUpWithError() throws {
        deployment = try ExampleFilesDeployment(self)
    }

    /// 24 MiB of random data (stored uncompressed: six 4 MiB chunk files) and 4 MiB of zeros.
    func makeDisk(_ name: String, seed: UInt64) throws {
        var content = TestData.random(28 << 20, seed: seed)
        for index in (8 << 20)..<(12 << 20) { content[index] = 0 }
        try Data(content).write(to: URL(fileURLWithPath: deployment.files + "/" + name))
    }

    func status(_ name: String) throws -> [String] {
        try deployment.recoveryPoints(name).map { $0["status"] as? String ?? "?" }
    }

    func testACleanInitialReplicaIsCheckedFromStorageAndListedVerified() throws {
        try makeDisk("disk.img", seed: 1)
        let report = try deployment.json(["backup", "disk.img"])
        XCTAssertEqual(report["verified"] as? Bool, true, "\(report)")
        let check = try XCTUnwrap(report["verification"] as? [String: Any], "the report says what was checked: \(report)")
        XCTAssertEqual(check["chunks_checked"] as? Int, 6, "every distinct data chunk of the point: \(check)")
        XCTAssertEqual(check["chunks_new"] as? Int, report["chunks_new"] as? Int)
        XCTAssertEqual(check["chunks_shared"] as? Int, 0)
        XCTAssertEqual((check["damaged"] as? [Any])?.count, 0)
        let reads = try XCTUnwrap(check["reads"] as? [String: Int])
        XCTAssertEqual((reads["direct"] ?? 0) + (reads["after_dropping_cache"] ?? 0), 6, "each chunk was read from storage: \(reads)")
        if try runProcess(["stat", "-f", "-c", "%T", deployment.data]).stdout.hasPrefix("ext2/ext3") {
            XCTAssertEqual(reads["direct"], 6, "ext4 does O_DIRECT: \(reads)")
            XCTAssertTrue((check["summary"] as? String ?? "").contains("re-read from storage with O_DIRECT once durable: the 6 written for it "
                                                                       + "compared with a checksum (XXH64) of each blob taken as it was written"), "\(check)")
        }
        XCTAssertEqual((report["recovery_point"] as? [String: Any])?["status"] as? String, "verified")
        XCTAssertEqual(try status("disk.img"), ["verified"])
        let list = try deployment.dpm(["rp", "list", "disk.img"])
        XCTAssertTrue(list.stdout.split(separator: "\n").last?.hasSuffix("verified") == true, list.stdout)

        // A second source with the same content writes nothing: its initial replica's chunks
        // are shared, so the check decodes and re-hashes them. The text report says so.
        try makeDisk("other.img", seed: 1)
        let text = try deployment.dpm(["backup", "other.img"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("  verified: 6 chunks (24.0 MiB stored) re-read from storage"), text.stdout)
        XCTAssertTrue(text.stdout.contains("once durable: the 6 it shares with earlier points decoded and re-hashed (SHA-256)"), text.stdout)
        XCTAssertEqual(try status("other.img"), ["verified"])

        // A later backup is not checked as it is made: ok, until `dpm verify` checks it.
        try TestData.write(TestData.random(1 << 20, seed: 3), to: deployment.files + "/disk.img", at: 20 << 20)
        let incremental = try deployment.json(["backup", "disk.img"])
        XCTAssertNil(incremental["verification"], "\(incremental)")
        XCTAssertEqual(try status("disk.img"), ["verified", "ok"])
        let verify = try deployment.dpm(["verify", "disk.img"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("re-read from storage"), verify.stdout)
        XCTAssertEqual(try status("disk.img"), ["verified", "verified"])
    }

    /// A chunk file changed after its write, before its check: the point is listed unverified
    /// meanwhile, then damaged, and the backup exits 3 saying so.
    func testAChunkChangedBeforeTheCheckMarksThePointDamagedAndExitsThree() throws {
        try makeDisk("disk.img", seed: 4)
        let backup = try deployment.start(["backup", "disk.img", "--json"], pausingAt: "replica-check.started")
        try backup.waitUntilPaused()
        XCTAssertEqual(try status("disk.img"), ["unverified"], "the point is unverified until its check ends")
        let listed = try deployment.dpm(["rp", "list", "disk.img"])
        XCTAssertTrue(listed.stdout.split(separator: "\n").last?.hasSuffix("unverified") == true, listed.stdout)
        let victim = try XCTUnwrap(deployment.chunkFiles().dropFirst(2).first)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[bytes.count / 2] ^= 0x01
        try TestData.write([bytes[bytes.count / 2]], to: victim, at: UInt64(bytes.count / 2))

        let result = backup.resume()
        XCTAssertEqual(result.status, 3, "verification damage exits 3: \(result.stdout) \(result.stderr)")
        let report = try XCTUnwrap(try result.json() as? [String: Any], result.stdout)
        XCTAssertEqual(report["verified"] as? Bool, false)
        let point = try XCTUnwrap(report["recovery_point"] as? [String: Any])
        XCTAssertEqual(point["status"] as? String, "damaged")
        let check = try XCTUnwrap(report["verification"] as? [String: Any])
        let damaged = try XCTUnwrap(check["damaged"] as? [[String: Any]])
        XCTAssertEqual(damaged.count, 1, "\(check)")
        XCTAssertEqual(damaged.first?["rp"] as? String, point["id"] as? String)
        let digest = (victim as NSString).lastPathComponent
        XCTAssertTrue((damaged.first?["problem"] as? String ?? "").contains(digest), "the damage names the chunk: \(damaged)")
        XCTAssertTrue((check["summary"] as? String ?? "").contains("is marked damaged"), "\(check)")
        XCTAssertEqual(try status("disk.img"), ["damaged"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: victim), "the damaged chunk is quarantined")
        let quarantined = (try? FileManager.default.contentsOfDirectory(atPath: deployment.data + "/store/quarantine")) ?? []
        XCTAssertTrue(quarantined.contains { $0.hasPrefix(digest) }, "\(quarantined)")

        // The next backup is a new initial replica that writes the chunk afresh; verify then
        // finds the first point intact again.
        let next = try deployment.json(["backup", "disk.img"])
        XCTAssertEqual(next["verified"] as? Bool, true, "\(next)")
        XCTAssertEqual(try deployment.dpm(["verify", "disk.img"]).status, 0)
        XCTAssertEqual(try status("disk.img"), ["verified", "verified"])
    }

    /// The fault is on the disk only: the chunk file's page cache still holds what was written
    /// (a check that read the cache would pass), so only a read from storage can find it.
    func testAFaultOnTheDiskUnderACachedChunkIsFound() throws {
        try checkDiskFault(mountOptions: "loop", method: "with O_DIRECT")
    }

    /// ext4 with data=journal serves O_DIRECT reads from the page cache (statx reports no
    /// direct-I/O alignment): the check drops the cached pages instead, and still finds the fault.
    func testAFaultOnTheDiskIsFoundWhereODirectWouldReadTheCache() throws {
        try checkDiskFault(mountOptions: "loop,data=journal", method: "after dropping their cached pages (posix_fadvise DONTNEED")
    }

    /// Backs up onto a loop-mounted ext4, changes a chunk on the image under the mounted file
    /// system while the backup waits before its check, and expects the check (read by `method`)
    /// to find it.
    func checkDiskFault(mountOptions: String, method: String) throws {
        for tool in ["mkfs.ext4", "filefrag", "mount", "umount"] { try TestSupport.require(tool) }
        guard getuid() == 0 else { throw XCTSkip("mounting a loop device needs root") }
        let image = deployment.root + "/store-fs.img"
        let created = try runProcess(["sh", "-c", "truncate -s 256M '\(image)' && mkfs.ext4 -q -F -b 4096 '\(image)'"])
        XCTAssertEqual(created.status, 0, created.stderr)
        guard try runProcess(["mount", "-o", mountOptions, image, deployment.data]).status == 0 else {
            throw XCTSkip("cannot mount a loop device here (needs root and /dev/loop*)")
        }
        addTeardownBlock { _ = try? runProcess(["umount", self.deployment.data]) }
        // The mount hid the data directory's settings.
        XCTAssertEqual(try deployment.dpm(["config", "set", "example-files.directory", deployment.files]).status, 0)
        try makeDisk("disk.img", seed: 5)

        let backup = try deployment.start(["backup", "disk.img"], pausingAt: "replica-check.started")
        try backup.waitUntilPaused()
        let victim = try XCTUnwrap(deployment.chunkFiles().dropFirst(3).first)
        let written = try Data(contentsOf: URL(fileURLWithPath: victim))
        let offset = 2 << 20
        let position = try imageOffset(of: victim, at: offset)
        let flipped = written[offset..<(offset + 64)].map { ~$0 }
        try TestData.write(Array(flipped), to: image, at: position)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: victim)), written,
                       "the page cache still holds the chunk as written, so a cached read-back could not see the fault")

        let result = backup.resume()
        XCTAssertEqual(result.status, 3, "verification damage exits 3: \(result.stdout) \(result.stderr)")
        XCTAssertTrue(result.stdout.contains("VERIFICATION FAILED: 6 chunks (24.0 MiB stored) re-read from storage \(method)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("is marked damaged"), result.stdout)
        XCTAssertTrue(result.stdout.contains((victim as NSString).lastPathComponent), result.stdout)
        XCTAssertEqual(try status("disk.img"), ["damaged"])
    }

    /// The byte offset in the file system image of byte `offset` of `path`, from `filefrag -v`.
    func imageOffset(of path: String, at offset: Int) throws -> UInt64 {
        let map = try runProcess(["filefrag", "-v", path])
        XCTAssertEqual(map.status, 0, map.stderr)
        let blockSize = try XCTUnwrap(map.stdout.firstMatch(of: #/blocks of (\d+) bytes/#).flatMap { Int($0.1) }, map.stdout)
        let block = offset / blockSize
        for match in map.stdout.matches(of: #/(?m)^\s*\d+:\s*(\d+)\.\.\s*(\d+):\s*(\d+)\.\./#) {
            guard let first = Int(match.1), let last = Int(match.2), let physical = UInt64(match.3), (first...last).contains(block) else { continue }
            return (physical + UInt64(block - first)) * UInt64(blockSize) + UInt64(offset % blockSize)
        }
        XCTFail("filefrag names no extent holding block \(block) of \(path): \(map.stdout)")
        throw CocoaError(.fileReadUnknown)
    }
}
