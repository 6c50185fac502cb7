import Foundation
import TestSupport
import XCTest

/// `dpm group …`: every invalid combination exits 2 naming its rule; the plan review.
final class GroupCommandTests: XCTestCase {
    var deployment: ExampleFilesDeployment!

    override func setUpWithError() throws {
        deployment = try ExampleFilesDeployment(self)
        for name in ["a.img", "b.img", "c.img"] {
            try Data(TestData.random(3 << 20, seed: 21)).write(to: URL(fileURLWithPath: deployment.files + "/" + name))
        }
    }

    func refused(_ arguments: [String], rule: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try deployment.dpm(arguments)
        XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains("rule \(rule):"), "\(arguments) should break rule \(rule): \(result.stderr)", file: file, line: line)
    }

    func testEveryRuleIsEnforcedWithExitTwo() throws {
        try refused(["group", "create", "g", "--members", "a.img,nope.img"], rule: "unknown-member")
        try refused(["group", "create", "g", "--members", "a.img", "--sync", "20"], rule: "sync-frequency")
        try refused(["group", "create", "g", "--members", "a.img", "--retention", "500"], rule: "short-term-retention")
        try refused(["group", "create", "g", "--members", "a.img", "--online-retention", "3361"], rule: "online-retention-max")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-retention", "100y"], rule: "tape-retention-range")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-retention", "12m"], rule: "tape-retention-range")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-retention", "5w"], rule: "tape-retention-range")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-retention", "3w", "--tape-frequency", "monthly"], rule: "tape-frequency-for-range")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-retention", "6m", "--tape-frequency", "quarterly"], rule: "tape-frequency-for-range")
        try refused(["group", "create", "g", "--members", "a.img", "--tape-frequency", "hourly"], rule: "tape-frequency")
        try refused(["group", "create", "g", "--members", "a.img", "--sync", "just-before-rp", "--rp-times", ""], rule: "just-before-rp")
        try refused(["group", "create", "g", "--members", "a.img", "--replica", "offline:/does/not/exist"], rule: "replica-creation")
        try refused(["group", "create", "g", "--members", "a.img", "--consistency-check", "weekly"], rule: "consistency-check")
        try refused(["group", "create", "g", "--members", "a.img", "--online", "on"], rule: "tier-available")
        try refused(["group", "create", "g", "--members", "a.img", "--tape", "on"], rule: "tier-available")
        try refused(["group", "create", "bad name", "--members", "a.img"], rule: "group-name")
        // Allowed edges are accepted.
        XCTAssertEqual(try deployment.dpm(["group", "create", "g", "--members", "a.img,b.img", "--sync", "1440", "--retention", "448d",
                                           "--online-retention", "3360", "--tape-retention", "99y", "--tape-frequency", "yearly",
                                           "--consistency-check", "daily@02:30", "--replica", "off-peak"]).status, 0)
        try refused(["group", "create", "h", "--members", "b.img"], rule: "one-group-per-datasource")
        try refused(["group", "modify", "g", "--sync", "16"], rule: "sync-frequency")
        let shown = try deployment.json(["group", "show", "g"])
        XCTAssertEqual(shown["sync_minutes"] as? Int, 1440)
        XCTAssertEqual(shown["member_names"] as? [String], ["a.img", "b.img"])
        XCTAssertEqual(try deployment.dpm(["group", "modify", "g", "--members", "a.img", "--tape-retention", "2w", "--tape-frequency", "weekly"]).status, 0)
        XCTAssertEqual(try deployment.dpm(["group", "create", "h", "--members", "b.img"]).status, 0, "b.img left g")
        let list = try deployment.dpm(["group", "list", "--json"])
        XCTAssertEqual((try list.json() as? [[String: Any]])?.count, 2)
        XCTAssertEqual(try deployment.dpm(["group", "delete", "h"]).status, 0)
        XCTAssertEqual(try deployment.dpm(["group", "show", "h"]).status, 1)
    }

    func testThePlanReviewShowsSizesAndTakesAnAllocation() throws {
        XCTAssertEqual(try deployment.dpm(["group", "create", "p", "--members", "a.img,b.img,c.img", "--retention", "10"]).status, 0)
        let plan = try deployment.json(["group", "plan", "p"])
        XCTAssertEqual(plan["data_bytes"] as? Int, 3 * (3 << 20))
        XCTAssertEqual(plan["daily_churn"] as? Double, 0.1)
        XCTAssertEqual(plan["store_recommended"] as? Int, Int(Double(9 << 20) * 2.0))
        XCTAssertEqual((plan["jobs_per_day"] as? [String: Int])?["replica"], 3)
        let edited = try deployment.json(["group", "plan", "p", "--store-allocation", "10M"])
        XCTAssertEqual(edited["store_allocated"] as? Int, 10 << 20)
        XCTAssertTrue((edited["warnings"] as? [String] ?? []).contains { $0.contains("below the recommended") })
    }

    func testOfflineReplicaExportAndImportSeedsANewMember() throws {
        XCTAssertEqual(try deployment.dpm(["backup", "a.img"]).status, 0)
        let media = deployment.root + "/usb"
        XCTAssertEqual(try deployment.dpm(["replica", "export", "a.img", media]).status, 0)
        // A second server, with the same file, seeded from the media.
        let other = DPM.run
        let secondData = deployment.root + "/second"
        XCTAssertEqual(try other(["config", "set", "example-files.directory", deployment.files], secondData, deployment.environment, 60).status, 0)
        let imported = try other(["replica", "import", "a.img", media, "--json"], secondData, deployment.environment, 60)
        XCTAssertEqual(imported.status, 0, imported.stderr)
        // The imported replica is checked in the new store as a backup's initial replica is.
        let importedReport = try XCTUnwrap(try imported.json() as? [String: Any], imported.stdout)
        XCTAssertEqual((importedReport["recovery_point"] as? [String: Any])?["status"] as? String, "verified", imported.stdout)
        let check = try XCTUnwrap(importedReport["verification"] as? [String: Any], imported.stdout)
        XCTAssertGreaterThan(check["chunks_checked"] as? Int ?? 0, 0, "\(check)")
        XCTAssertEqual(check["chunks_new"] as? Int, check["chunks_checked"] as? Int, "every chunk was new to this store: \(check)")
        let next = try other(["backup", "a.img", "--json"], secondData, deployment.environment, 60)
        XCTAssertEqual(next.status, 0, next.stderr)
        XCTAssertEqual((try next.json() as? [String: Any])?["chunks_new"] as? Int, 0, "the seeded chunks are reused")
        XCTAssertEqual(try other(["verify"], secondData, deployment.environment, 60).status, 0)
    }
}
