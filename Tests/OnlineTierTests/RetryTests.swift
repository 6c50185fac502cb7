import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// Retries through a proxy that fails requests now and then, in front of a real SeaweedFS.
final class RetryTests: XCTestCase {
    func testUploadsAndListingsCompleteThroughOccasional503s() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self)
        let proxy = try FlakyHTTPProxy(upstreamPort: server.port) { index, _, _ in index % 3 == 1 ? .slowDown : nil }
        addTeardownBlock { proxy.stop() }
        let client = try server.client(endpoint: proxy.endpoint) {
            $0.retry = RetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.05)
            $0.maxConcurrentRequests = 4
        }
        let bucket = BucketName.fresh("retried")
        try client.createBucket(bucket)
        let bodies = (0..<12).map { TestData.random(50_000 + $0, seed: UInt64($0)) }
        try client.concurrently(bodies.count) { _ = try client.putObject(bucket: bucket, key: "chunk/\($0)", bytes: bodies[$0]) }
        let large = TestData.random(11 << 20, seed: 99)
        _ = try client.upload(bucket: bucket, key: "large", body: .bytes(large), partSize: 5 << 20)
        XCTAssertEqual(try client.listAllObjects(bucket: bucket).count, 13)

        let direct = try server.client()
        for (index, body) in bodies.enumerated() {
            XCTAssertEqual(Array(try direct.getObject(bucket: bucket, key: "chunk/\(index)").bytes), body)
        }
        XCTAssertEqual(Array(try direct.getObject(bucket: bucket, key: "large").bytes), large)
        let (requests, faults) = proxy.statistics
        XCTAssertGreaterThanOrEqual(faults.count, requests / 3 - 1, "a third of the requests were refused with 503")
        XCTAssertGreaterThan(faults.count, 5)
    }

    func testABrokenDownloadResumesWhereItStopped() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self)
        let bucket = BucketName.fresh("resumed")
        let body = TestData.random(3 << 20, seed: 7)
        try server.client().createBucket(bucket)
        try server.client().putObject(bucket: bucket, key: "object", bytes: body)
        // The first GET is cut off half-way, the second refused by a reset, the third answers.
        let proxy = try FlakyHTTPProxy(upstreamPort: server.port) { index, _, _ in [0: .truncate, 1: .reset][index] }
        addTeardownBlock { proxy.stop() }
        let client = try server.client(endpoint: proxy.endpoint) { $0.retry = RetryPolicy(maxAttempts: 4, baseDelay: 0.01, maxDelay: 0.05) }
        var received: [UInt8] = []
        _ = try client.getObject(bucket: bucket, key: "object") { received += $0 }
        XCTAssertEqual(received.count, body.count, "every byte once")
        XCTAssertEqual(received, body)
        XCTAssertEqual(proxy.statistics.requests, 3)
        XCTAssertEqual(proxy.statistics.faults.count, 2)

        let ranged = try client.getObject(bucket: bucket, key: "object", range: 1000..<2_000_000)
        XCTAssertEqual(Array(ranged.bytes), Array(body[1000..<2_000_000]))
    }

    func testRetriesStopAtTheLimitAndSaySo() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self)
        let proxy = try FlakyHTTPProxy(upstreamPort: server.port) { _, _, _ in .slowDown }
        addTeardownBlock { proxy.stop() }
        let client = try server.client(endpoint: proxy.endpoint) { $0.retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.02) }
        let error = assertS3Error("SlowDown") { try client.listObjects(bucket: "anything") }
        assertS3Error("ServiceUnavailable") { try client.headBucket("anything") }  // a HEAD reply has no body to name SlowDown
        XCTAssertEqual(error?.httpStatus, 503)
        XCTAssertEqual(error?.attempts, 3)
        XCTAssertEqual(proxy.statistics.requests, 6)
        XCTAssertTrue(error?.description.contains("after 3 attempts") == true, error?.description ?? "")
    }

    /// A server that accepts the connection and never answers: each attempt ends at the
    /// request timeout, and the error says so.
    func testASilentServerTimesOut() throws {
        let (silent, port) = try LoopbackSocket.listening(backlog: 8)
        defer { close(silent) }
        var configuration = S3Configuration(endpoint: "http://127.0.0.1:\(port)",
                                            credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
        configuration.requestTimeout = 0.5
        configuration.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.02)
        let error = assertS3Error("Timeout") { try S3Client(configuration).listObjects(bucket: "silent") }
        XCTAssertEqual(error?.attempts, 2)
        XCTAssertTrue(error?.description.contains("raise the request timeout") == true, error?.description ?? "")
    }

    func testBackOffIsJitteredAndBounded() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: 0.1, maxDelay: 1)
        let delays = (0..<200).map { _ in policy.delay(afterAttempt: 3) }
        XCTAssertTrue(delays.allSatisfy { $0 >= 0 && $0 <= 0.4 })
        XCTAssertGreaterThan(Set(delays).count, 150, "jittered, not fixed")
        XCTAssertTrue((0..<200).map { _ in policy.delay(afterAttempt: 20) }.allSatisfy { $0 <= 1 }, "capped at maxDelay")
    }
}
