import Foundation
import TestSupport
import XCTest

/// `dpm server` end to end: workers isolate faulty providers, the accelerated test clock
/// makes recovery points appear on schedule, and a stop and restart neither loses nor
/// duplicates work.
final class ServerTests: XCTestCase {
    var root = ""
    var data: String { root + "/data" }
    var plugins: String { root + "/plugins" }

    override func setUpWithError() throws {
        root = try TestSupport.temporaryDirectory(self)
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
    }

    var environment: [String: String] { ["DPM_PLUGIN_PATH": plugins, "DPM_TEST_MODE": "1", "DPM_LOG_LEVEL": "info"] }

    @discardableResult
    func dpm(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: data, environment: environment)
        XCTAssertEqual(result.status, 0, "dpm \(arguments.joined(separator: " ")): \(result.stderr)", file: file, line: line)
        return result
    }

    func startServer(_ extra: [String] = []) throws -> (Process, String) {
        let log = root + "/server-\(UUID().uuidString.prefix(4)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        process.arguments = ["server", "--data-dir", data, "--tick", "0.2"] + extra
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, log)
    }

    func stop(_ process: Process, file: StaticString = #filePath, line: UInt = #line) {
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(process.isRunning, "the server did not stop on SIGTERM", file: file, line: line)
        XCTAssertEqual(process.terminationStatus, 0, file: file, line: line)
    }

    func jobs() throws -> [[String: Any]] {
        try XCTUnwrap(try dpm(["jobs", "list", "--json", "--limit", "500"]).json() as? [[String: Any]])
    }

    func waitFor(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(200_000)
        }
        return try condition()
    }

    func testAFaultyProviderFailsOnlyItsOwnJobs() throws {
        let source = TestSupport.repositoryRoot + "/Tests/HostTests/Fixtures/faulty_plugin.c"
        try TestSupport.compilePlugin(source: source, output: plugins + "/libFaultyFiles.so")
        try TestSupport.compilePlugin(source: TestSupport.repositoryRoot + "/examples/c-plugin/example_plugin.c", output: plugins + "/libExampleFiles.so")
        for folder in ["good", "bad"] { try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true) }
        for name in ["trap.img", "hang.img"] { try Data(TestData.random(2 << 20, seed: 4)).write(to: URL(fileURLWithPath: root + "/bad/" + name)) }
        try Data(TestData.random(6 << 20, seed: 5)).write(to: URL(fileURLWithPath: root + "/good/ok.img"))
        try dpm(["config", "set", "faulty-files.directory", root + "/bad"])
        try dpm(["config", "set", "example-files.directory", root + "/good"])
        try dpm(["config", "set", "server.job_timeout", "4s"])
        try dpm(["group", "create", "faulty", "--members", "trap.img,hang.img"])

        let (server, log) = try startServer()
        defer { if server.isRunning { server.terminate() } }
        XCTAssertTrue(try waitFor(20) { try jobs().filter { $0["state"] as? String != "running" }.count >= 2 },
                      "the faulty jobs never ended: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        // The server survived both; a job of another data source now succeeds.
        XCTAssertTrue(server.isRunning)
        try dpm(["group", "create", "good", "--members", "ok.img"])
        XCTAssertTrue(try waitFor(20) { try jobs().contains { $0["datasource_id"] as? String == "ok.img" && $0["state"] as? String == "succeeded" } })
        stop(server)

        let all = try jobs()
        let trap = try XCTUnwrap(all.first { $0["datasource_id"] as? String == "trap.img" })
        XCTAssertEqual(trap["state"] as? String, "failed")
        XCTAssertTrue((trap["message"] as? String ?? "").contains("signal 6"), "\(trap)")
        let hang = try XCTUnwrap(all.first { $0["datasource_id"] as? String == "hang.img" })
        XCTAssertEqual(hang["state"] as? String, "failed")
        XCTAssertTrue((hang["message"] as? String ?? "").contains("timed out"), "\(hang)")
        let points = (try dpm(["rp", "list", "ok.img", "--json"]).json() as? [String: Any])?["recovery_points"] as? [Any]
        XCTAssertEqual(points?.count, 1)
    }

    func testScheduledRecoveryPointsAppearAndARestartNeitherLosesNorDuplicatesWork() throws {
        try TestSupport.require("qemu-img")
        let disk = root + "/web.vhdx"
        XCTAssertEqual(try runProcess(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", disk, "64M"]).status, 0)
        XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x61 0 4M", disk]).status, 0)
        try dpm(["vm", "add", "web", "--disk", disk])
        try dpm(["group", "create", "web", "--members", "web", "--sync", "15", "--express-full-times", ""])
        // 15 minutes of schedule pass every 3 seconds.
        let anchor = ISO8601DateFormatter().string(from: Date())
        let clock = ["--time-scale", "300", "--time-anchor", anchor]

        let (first, log) = try startServer(clock)
        defer { if first.isRunning { first.terminate() } }
        XCTAssertTrue(try waitFor(30) { try jobs().filter { $0["kind"] as? String == "sync" && $0["state"] as? String == "succeeded" }.count >= 2 },
                      "no scheduled syncs: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let (second, secondLog) = try startServer(clock)
        second.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, 1, "a second server on one data directory must be refused")
        XCTAssertTrue((try String(contentsOfFile: secondLog, encoding: .utf8)).contains("another dpm server is running"))
        stop(first)
        let before = try jobs()
        XCTAssertFalse(before.contains { $0["state"] as? String == "running" })
        let pointsBefore = (try dpm(["rp", "list", "web", "--json"]).json() as? [String: Any])?["recovery_points"] as? [Any]

        // Down for about three slots; the restart runs one catch-up sync, then the schedule.
        Thread.sleep(forTimeInterval: 9.5)
        let restartedAt = Date()
        let (restarted, _) = try startServer(clock)
        defer { if restarted.isRunning { restarted.terminate() } }
        XCTAssertTrue(try waitFor(10) { try jobs().count > before.count })
        Thread.sleep(forTimeInterval: 1)
        stop(restarted)
        let after = try jobs()
        let newJobs = after.filter { job in !before.contains { $0["id"] as? Int == job["id"] as? Int } }
        let startedSoon = newJobs.filter {
            guard let text = $0["started"] as? String, let started = ISO8601DateFormatter.fractional.date(from: text) else { return false }
            return started.timeIntervalSince(restartedAt) < 1.5
        }
        XCTAssertEqual(startedSoon.filter { $0["kind"] as? String == "sync" }.count, 1, "exactly one catch-up: \(newJobs)")
        let slots = after.filter { $0["kind"] as? String == "sync" && $0["state"] as? String == "succeeded" }.compactMap { $0["slot"] as? String }
        XCTAssertEqual(Set(slots).count, slots.count, "a slot ran twice: \(slots)")
        let pointsAfter = (try dpm(["rp", "list", "web", "--json"]).json() as? [String: Any])?["recovery_points"] as? [Any]
        XCTAssertGreaterThan(pointsAfter?.count ?? 0, pointsBefore?.count ?? 0)
        XCTAssertEqual(try dpm(["verify"]).status, 0)
    }
}

extension ISO8601DateFormatter {
    static let fractional: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
