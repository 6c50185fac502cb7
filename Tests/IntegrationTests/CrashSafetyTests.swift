import Foundation
import TestSupport
import XCTest

/// Kills `dpm backup` with SIGKILL at many points (DPM_CRASH_AT) and checks that nothing
/// partial is ever listed, that verify stays clean, and that the next backup succeeds and
/// restores byte for byte.
final class CrashSafetyTests: XCTestCase {
    struct Scenario {
        let point: String
        let hit: Int
        /// Whether the recovery point is complete when the crash comes (its row is written).
        var completesPoint: Bool { point == "catalog.inserted" }
    }

    static let fullBackupPoints: [Scenario] = [
        .init(point: "atomic.synced", hit: 1), .init(point: "atomic.renamed", hit: 1), .init(point: "backup.prepared", hit: 1),
        .init(point: "chunk.temp-written", hit: 1), .init(point: "chunk.temp-written", hit: 3), .init(point: "chunk.temp-written", hit: 5),
        .init(point: "chunks.synced", hit: 1), .init(point: "chunk.renamed", hit: 1), .init(point: "chunk.renamed", hit: 3),
        .init(point: "chunk.renamed", hit: 6), .init(point: "chunks.published", hit: 1), .init(point: "snapshot.finished", hit: 1),
        .init(point: "atomic.synced", hit: 2), .init(point: "atomic.renamed", hit: 2), .init(point: "index.written", hit: 1),
        .init(point: "catalog.inserted", hit: 1),
    ]

    static let incrementalPoints: [Scenario] = [
        .init(point: "backup.prepared", hit: 1), .init(point: "chunk.temp-written", hit: 1), .init(point: "chunk.temp-written", hit: 3),
        .init(point: "chunks.synced", hit: 1), .init(point: "chunk.renamed", hit: 2), .init(point: "chunks.published", hit: 1),
        .init(point: "snapshot.finished", hit: 1), .init(point: "atomic.synced", hit: 1), .init(point: "atomic.renamed", hit: 1),
        .init(point: "index.written", hit: 1), .init(point: "catalog.inserted", hit: 1),
    ]

    var root = ""
    var plugins = ""
    var files = ""

    override func setUpWithError() throws {
        root = try TestSupport.temporaryDirectory(self)
        plugins = root + "/plugins"
        files = root + "/files"
        for directory in [plugins, files] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try TestSupport.compilePlugin(source: TestSupport.repositoryRoot + "/examples/c-plugin/example_plugin.c", output: plugins + "/libExampleFiles.so")
    }

    func dpm(_ data: String, _ arguments: [String], crash: Scenario? = nil) throws -> CommandResult {
        var environment = ["DPM_PLUGIN_PATH": plugins]
        if let crash { environment["DPM_CRASH_AT"] = "\(crash.point):\(crash.hit)" }
        return try DPM.run(arguments, dataDirectory: data, environment: environment)
    }

    func pointCount(_ data: String) throws -> Int {
        let result = try dpm(data, ["rp", "list", "disk.img", "--json"])
        guard result.status == 0 else { return 0 }
        return ((try result.json() as? [String: Any])?["recovery_points"] as? [Any])?.count ?? 0
    }

    func check(_ scenario: Scenario, data: String, pointsBefore: Int, content: [UInt8], label: String) throws {
        let crashed = try dpm(data, ["backup", "disk.img"], crash: scenario)
        XCTAssertEqual(crashed.status, 9, "\(label): the backup should die by SIGKILL at \(scenario.point):\(scenario.hit); stderr: \(crashed.stderr)")
        XCTAssertEqual(try pointCount(data), pointsBefore + (scenario.completesPoint ? 1 : 0), "\(label): a partial recovery point is listed")
        let verify = try dpm(data, ["verify"])
        XCTAssertEqual(verify.status, 0, "\(label): verify after the crash: \(verify.stdout) \(verify.stderr)")
        let next = try dpm(data, ["backup", "disk.img"])
        XCTAssertEqual(next.status, 0, "\(label): the next backup failed: \(next.stderr)")
        let gc = try dpm(data, ["gc", "--grace", "0"])
        XCTAssertEqual(gc.status, 0, "\(label): gc: \(gc.stderr)")
        XCTAssertEqual(try dpm(data, ["verify"]).status, 0, "\(label): verify after gc")
        let out = root + "/restore-\(label)"
        XCTAssertEqual(try dpm(data, ["recover", "disk.img", "--raw", out]).status, 0)
        let restored = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: out + "/data.raw"))) ?? Data())
        XCTAssertTrue(restored == content, "\(label): the restored image differs")
        try? FileManager.default.removeItem(atPath: out)
    }

    func testKillingAFullBackupAnywhereLosesNothing() throws {
        let content = TestData.random(24 << 20, seed: 11)
        try Data(content).write(to: URL(fileURLWithPath: files + "/disk.img"))
        for (number, scenario) in Self.fullBackupPoints.enumerated() {
            let data = root + "/full-\(number)"
            XCTAssertEqual(try dpm(data, ["config", "set", "example-files.directory", files]).status, 0)
            try check(scenario, data: data, pointsBefore: 0, content: content, label: "full-\(scenario.point)-\(scenario.hit)")
        }
    }

    func testKillingAnIncrementalBackupAnywhereLosesNothing() throws {
        var content = TestData.random(24 << 20, seed: 12)
        try Data(content).write(to: URL(fileURLWithPath: files + "/disk.img"))
        for (number, scenario) in Self.incrementalPoints.enumerated() {
            let data = root + "/incremental-\(number)"
            XCTAssertEqual(try dpm(data, ["config", "set", "example-files.directory", files]).status, 0)
            XCTAssertEqual(try dpm(data, ["backup", "disk.img"]).status, 0)
            // Change three chunks so the incremental writes three new ones.
            for chunk in [1, 3, 5] {
                let change = TestData.random(1 << 20, seed: UInt64(1000 + number * 10 + chunk))
                content.replaceSubrange((chunk << 22)..<((chunk << 22) + (1 << 20)), with: change)
                try TestData.write(change, to: files + "/disk.img", at: UInt64(chunk) << 22)
            }
            try check(scenario, data: data, pointsBefore: 1, content: content, label: "incremental-\(scenario.point)-\(scenario.hit)")
        }
        XCTAssertGreaterThanOrEqual(Self.fullBackupPoints.count + Self.incrementalPoints.count, 20)
    }
}
