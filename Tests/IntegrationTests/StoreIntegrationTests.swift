import Foundation
import TestSupport
import XCTest

/// The short-term disk tier end to end, through the dpm binary and the C example plugin:
/// backup, incremental, restore, verify of damage, prune, gc, and gc racing a backup.
final class StoreIntegrationTests: XCTestCase {
    var deployment: ExampleFilesDeployment!

    override func setUpWithError() throws {
        deployment = try ExampleFilesDeployment(self)
    }

    /// 40 MiB: random, repeated and zero regions, with a hole.
    func makeDisk(_ name: String = "disk.img") throws -> [UInt8] {
        var content = TestData.random(40 << 20, seed: 7)
        for index in (12 << 20)..<(20 << 20) { content[index] = 0 }
        for index in (24 << 20)..<(28 << 20) { content[index] = UInt8(index % 251) }
        try Data(content).write(to: URL(fileURLWithPath: deployment.files + "/" + name))
        return content
    }

    func restoreLatest(_ name: String = "disk.img", rp: String = "latest") throws -> [UInt8] {
        let out = deployment.root + "/restore-\(UUID().uuidString.prefix(6))"
        let result = try deployment.dpm(["recover", name, "--rp", rp, "--raw", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/data.raw")))
    }

    func testFullIncrementalRestoreAndDedup() throws {
        var content = try makeDisk()
        let first = try deployment.json(["backup", "disk.img"])
        XCTAssertEqual(first["verified"] as? Bool, true, "the initial replica is verified")
        let firstPoint = try XCTUnwrap(first["recovery_point"] as? [String: Any])
        XCTAssertEqual(firstPoint["kind"] as? String, "full")
        XCTAssertLessThan(firstPoint["bytes_stored"] as! Int, 40 << 20, "zeros and repeats compress")

        // Change 1 MiB and back up again: one new chunk.
        let change = TestData.random(1 << 20, seed: 99)
        content.replaceSubrange((30 << 20)..<(31 << 20), with: change)
        try TestData.write(change, to: deployment.files + "/disk.img", at: 30 << 20)
        let second = try deployment.json(["backup", "disk.img"])
        XCTAssertEqual(second["chunks_new"] as? Int, 1)
        XCTAssertEqual((second["recovery_point"] as? [String: Any])?["bytes_new"] as? Int, 4 << 20)

        XCTAssertEqual(try restoreLatest(), content)
        let points = try deployment.recoveryPoints("disk.img")
        XCTAssertEqual(points.count, 2)
        let original = try makeDisk("reference.img")
        XCTAssertEqual(try restoreLatest(rp: points[0]["id"] as! String), original, "the first point still restores its own state")
    }

    func testVerifyNamesThePointWithAFlippedByteAndExitsThree() throws {
        _ = try makeDisk()
        _ = try deployment.json(["backup", "disk.img"])
        let chunks = try chunkFiles()
        XCTAssertFalse(chunks.isEmpty)
        let victim = chunks[chunks.count / 2]
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[bytes.count - 10] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: victim))

        let point = try XCTUnwrap(try deployment.recoveryPoints("disk.img").first?["id"] as? String)
        let verify = try deployment.dpm(["verify"])
        XCTAssertEqual(verify.status, 3, verify.stdout + verify.stderr)
        XCTAssertTrue(verify.stdout.contains("DAMAGED disk.img \(point)"), verify.stdout)
        let listed = try deployment.recoveryPoints("disk.img")
        XCTAssertEqual(listed.first?["status"] as? String, "damaged")

        // The next backup rewrites the quarantined chunk; the damaged point is healthy again.
        _ = try deployment.json(["backup", "disk.img", "--full"])
        XCTAssertEqual(try deployment.dpm(["verify"]).status, 0)
    }

    func testVerifyNamesThePointWithADeletedChunk() throws {
        _ = try makeDisk()
        _ = try deployment.json(["backup", "disk.img"])
        let victim = try XCTUnwrap(try chunkFiles().first)
        try FileManager.default.removeItem(atPath: victim)
        let point = try XCTUnwrap(try deployment.recoveryPoints("disk.img").first?["id"] as? String)
        let verify = try deployment.dpm(["verify", "disk.img", "--json"])
        XCTAssertEqual(verify.status, 3)
        let damaged = (try verify.json() as? [String: Any])?["damaged"] as? [[String: Any]]
        XCTAssertEqual(damaged?.first?["rp"] as? String, point)
        XCTAssertTrue((damaged?.first?["problem"] as? String ?? "").contains("missing"), "\(String(describing: damaged))")
    }

    func testPruneKeepsExactlyTheRetentionAndGCFreesExactlyTheUnreferencedChunks() throws {
        var content = try makeDisk()
        for round in 0..<3 {
            let change = TestData.random(4 << 20, seed: UInt64(100 + round))
            content.replaceSubrange((32 << 20)..<(36 << 20), with: change)
            try TestData.write(change, to: deployment.files + "/disk.img", at: 32 << 20)
            _ = try deployment.json(["backup", "disk.img"])
        }
        XCTAssertEqual(try deployment.recoveryPoints("disk.img").count, 3)
        // Retention of 1 day keeps everything made just now.
        _ = try deployment.json(["datasources", "retention", "disk.img", "1"])
        let keep = try deployment.json(["prune"])
        XCTAssertEqual((keep["removed"] as? [Any])?.count, 0)
        XCTAssertEqual(keep["kept"] as? Int, 3)
        // Delete the two older points; gc frees exactly the two chunks only they used.
        let points = try deployment.recoveryPoints("disk.img")
        for point in points.prefix(2) {
            XCTAssertEqual(try deployment.dpm(["rp", "delete", "disk.img", "--rp", point["id"] as! String]).status, 0)
        }
        let before = try chunkFiles().count
        let gc = try deployment.json(["gc", "--grace", "0"])
        XCTAssertEqual(gc["chunks_removed"] as? Int, 2)
        XCTAssertEqual(try chunkFiles().count, before - 2)
        XCTAssertEqual(try restoreLatest(), content)
        XCTAssertEqual(try deployment.dpm(["verify"]).status, 0)
        // With a grace period nothing young is removed.
        XCTAssertEqual(try deployment.dpm(["rp", "delete", "disk.img", "--rp", points[2]["id"] as! String]).status, 0)
        let graced = try deployment.json(["gc", "--grace", "1h"])
        XCTAssertEqual(graced["chunks_removed"] as? Int, 0)
        XCTAssertGreaterThan(graced["chunks_kept_by_grace"] as? Int ?? 0, 0)
    }

    func testPruneRemovesOldPointsButAlwaysKeepsTheNewest() throws {
        _ = try makeDisk()
        _ = try deployment.json(["backup", "disk.img"])
        _ = try deployment.json(["backup", "disk.img"])
        // Age the catalog rows by rewriting their times, as if the backups were 30 days old.
        let catalog = deployment.data + "/catalog.sqlite"
        try TestSupport.require("sqlite3")
        XCTAssertEqual(try TestSupport.run(["sqlite3", catalog,
                                            "UPDATE recovery_points SET time = '2026-01-01T00:00:00.000Z'"]).status, 0)
        let result = try deployment.json(["prune"])
        XCTAssertEqual((result["removed"] as? [Any])?.count, 1, "\(result)")
        XCTAssertEqual(result["kept"] as? Int, 1)
        XCTAssertEqual(try deployment.recoveryPoints("disk.img").count, 1)
    }

    /// A gc that starts while a backup is writing must not delete chunks that backup uses,
    /// even chunks no recovery point in the catalog references yet.
    func testGCDuringABackupNeverDeletesItsChunks() throws {
        let content = try makeDisk()
        let first = try deployment.json(["backup", "disk.img"])
        let firstID = try XCTUnwrap((first["recovery_point"] as? [String: Any])?["id"] as? String)
        // Orphan every chunk: delete the only point. The next backup deduplicates against them.
        XCTAssertEqual(try deployment.dpm(["rp", "delete", "disk.img", "--rp", firstID]).status, 0)
        let chunkCount = try chunkFiles().count
        XCTAssertGreaterThan(chunkCount, 0)

        // Start a backup that pauses after its snapshot is finished, before its index exists.
        let backup = Process()
        backup.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        backup.arguments = ["backup", "disk.img", "--full", "--data-dir", deployment.data]
        backup.environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
            .merging(["DPM_PAUSE_AT": "snapshot.finished:3"]) { $1 }
        try backup.run()
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertTrue(backup.isRunning, "the backup should be paused mid-way")
        let gc = try deployment.json(["gc", "--grace", "0"])
        backup.waitUntilExit()
        XCTAssertEqual(backup.terminationStatus, 0)
        XCTAssertEqual(gc["chunks_removed"] as? Int, 0, "gc removed chunks a running backup uses: \(gc)")
        XCTAssertEqual(try chunkFiles().count, chunkCount)
        XCTAssertEqual(try deployment.dpm(["verify"]).status, 0)
        XCTAssertEqual(try restoreLatest(), content)
    }

    func chunkFiles() throws -> [String] { deployment.chunkFiles() }
}

/// `dpm jobs cancel` on a running backup: it stops, records `cancelled`, keeps the chunks it
/// wrote (a checkpoint), and the next backup reuses them.
final class JobCancelTests: XCTestCase {
    func testCancellingARunningBackupCheckpointsIt() throws {
        let deployment = try ExampleFilesDeployment(self)
        try Data(TestData.random(768 << 20, seed: 31)).write(to: URL(fileURLWithPath: deployment.files + "/big.img"))
        let backup = Process()
        backup.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        backup.arguments = ["backup", "big.img", "--data-dir", deployment.data]
        backup.environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
        backup.standardError = FileHandle.nullDevice
        try backup.run()
        var jobID: Int?
        let deadline = Date().addingTimeInterval(30)
        while jobID == nil && Date() < deadline {
            let jobs = (try? deployment.dpm(["jobs", "list", "--state", "running", "--json"]).json()) as? [[String: Any]]
            if let job = jobs?.first, (job["progress_done"] as? Int ?? 0) > 0 { jobID = job["id"] as? Int }
            if jobID == nil { usleep(100_000) }
        }
        let id = try XCTUnwrap(jobID, "the backup never showed progress in `dpm jobs list`")
        let shown = try deployment.json(["jobs", "show", String(id)])
        XCTAssertEqual(shown["state"] as? String, "running")
        XCTAssertEqual(try deployment.dpm(["jobs", "cancel", String(id)]).status, 0)
        backup.waitUntilExit()
        XCTAssertEqual(backup.terminationStatus, 1)
        let job = try deployment.json(["jobs", "show", String(id)])
        XCTAssertEqual(job["state"] as? String, "cancelled", "\(job)")
        XCTAssertTrue(try deployment.recoveryPoints("big.img").isEmpty, "a cancelled backup leaves no recovery point")
        let next = try deployment.json(["backup", "big.img"])
        XCTAssertGreaterThan(next["chunks_deduplicated"] as? Int ?? 0, 0, "the cancelled backup's chunks were kept: \(next)")
        XCTAssertEqual(try deployment.dpm(["verify"]).status, 0)

        // A backup killed outright cannot record its outcome; `jobs list` notices.
        try TestData.write(TestData.random(64 << 20, seed: 32), to: deployment.files + "/big.img", at: 0)
        let killed = Process()
        killed.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        killed.arguments = ["backup", "big.img", "--full", "--data-dir", deployment.data]
        killed.environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
            .merging(["DPM_CRASH_AT": "chunk.temp-written:3"]) { $1 }
        try killed.run()
        killed.waitUntilExit()
        XCTAssertEqual(killed.terminationReason, .uncaughtSignal)
        let jobs = try XCTUnwrap(try deployment.dpm(["jobs", "list", "--json"]).json() as? [[String: Any]])
        XCTAssertFalse(jobs.contains { $0["state"] as? String == "running" }, "\(jobs)")
        XCTAssertTrue(jobs.contains { ($0["message"] as? String ?? "").contains("ended without recording an outcome") }, "\(jobs)")
    }
}
