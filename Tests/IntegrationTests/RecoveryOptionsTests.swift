import Foundation
import TestSupport
import XCTest

/// Options of every recovery: the bandwidth limit and the completion email through a real
/// SMTP server (aiosmtpd).
final class RecoveryOptionsTests: XCTestCase {
    var deployment: ExampleFilesDeployment!

    override func setUpWithError() throws {
        deployment = try ExampleFilesDeployment(self)
        try Data(TestData.random(48 << 20, seed: 41)).write(to: URL(fileURLWithPath: deployment.files + "/disk.img"))
        XCTAssertEqual(try deployment.dpm(["backup", "disk.img"]).status, 0)
    }

    func testAThrottledRecoveryKeepsToItsRate() throws {
        let limit = 8.0 * 1024 * 1024
        let started = Date()
        let result = try deployment.dpm(["recover", "disk.img", "--raw", deployment.root + "/out", "--throttle", "8M"])
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(result.status, 0, result.stderr)
        // 48 MiB at 8 MiB/s: about 6 s, so process start and the final fsync weigh little.
        let rate = Double(48 << 20) / elapsed
        XCTAssertLessThanOrEqual(rate, limit * 1.1, "measured \(rate / 1_048_576) MiB/s")
        XCTAssertGreaterThanOrEqual(rate, limit * 0.9, "measured \(rate / 1_048_576) MiB/s")
        // A limit only during hours that are not now does not slow the recovery down.
        let hour = Calendar.current.component(.hour, from: Date())
        let window = String(format: "%02d:00-%02d:00", (hour + 2) % 24, (hour + 3) % 24)
        let free = Date()
        XCTAssertEqual(try deployment.dpm(["recover", "disk.img", "--raw", deployment.root + "/out2", "--throttle", "1M@\(window)"]).status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(free), 10, "1 MiB/s would take 48 s")
        XCTAssertEqual(try deployment.dpm(["recover", "disk.img", "--raw", deployment.root + "/out3", "--throttle", "fast"]).status, 2)
    }

    func testTheCompletionEmailReachesTheSMTPServer() throws {
        try TestSupport.require("python3")
        guard try runProcess(["python3", "-c", "import aiosmtpd"]).status == 0 else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("aiosmtpd is required in CI; .ci/run must pip install it") }
            throw XCTSkip("aiosmtpd is not installed (pip install aiosmtpd)")
        }
        let mailbox = deployment.root + "/mailbox"
        let port = 20_000 + Int(getpid() % 20_000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: TestSupport.which("python3")!)
        server.arguments = ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox", mailbox]
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(try deployment.dpm(["config", "set", "smtp.host", "127.0.0.1"]).status, 0)
        XCTAssertEqual(try deployment.dpm(["config", "set", "smtp.port", String(port)]).status, 0)
        XCTAssertEqual(try deployment.dpm(["config", "set", "smtp.from", "dpm@backup.example"]).status, 0)
        let result = try deployment.dpm(["recover", "disk.img", "--raw", deployment.root + "/out", "--notify", "admin@example.com"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let newMail = mailbox + "/new"
        var files: [String] = []
        for _ in 0..<50 where files.isEmpty {
            files = (try? FileManager.default.contentsOfDirectory(atPath: newMail)) ?? []
            if files.isEmpty { usleep(100_000) }
        }
        XCTAssertEqual(files.count, 1)
        let mail = try String(contentsOfFile: newMail + "/" + files[0], encoding: .utf8)
        XCTAssertTrue(mail.contains("X-RcptTo: admin@example.com"), mail)
        XCTAssertTrue(mail.contains("X-MailFrom: dpm@backup.example"), mail)
        XCTAssertTrue(mail.contains("Subject: dpm: recovery of disk.img from"), mail)
        XCTAssertTrue(mail.contains("succeeded"), mail)
        // A failed recovery is reported too.
        let failed = try deployment.dpm(["recover", "disk.img", "--rp", "no-such-point", "--raw", deployment.root + "/x", "--notify", "admin@example.com"])
        XCTAssertEqual(failed.status, 1)
        // Without an SMTP server configured, --notify is refused before any work.
        let bare = try DPM.run(["recover", "disk.img", "--raw", deployment.root + "/y", "--notify", "a@b.c"], dataDirectory: deployment.root + "/empty",
                               environment: deployment.environment)
        XCTAssertNotEqual(bare.status, 0)
    }
}
