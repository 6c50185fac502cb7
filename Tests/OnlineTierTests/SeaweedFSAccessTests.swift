import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// Refusals SeaweedFS must give and the client must explain: unsigned requests, a wrong
/// secret, an unknown key, a missing permission; and the ways to reach it: HTTPS with a
/// custom CA file, virtual-hosted buckets.
final class SeaweedFSAccessTests: XCTestCase {
    func testUnsignedAndBadlySignedRequestsAreRefusedAndExplained() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self)
        let bucket = BucketName.fresh("auth")
        try server.client().createBucket(bucket)
        try server.client().putObject(bucket: bucket, key: "secret", bytes: [1, 2, 3])

        let anonymous = try server.client { $0.credentials = .anonymous }
        let unsigned = assertS3Error("AccessDenied") { try anonymous.getObject(bucket: bucket, key: "secret") }
        XCTAssertEqual(unsigned?.httpStatus, 403)
        XCTAssertEqual(unsigned?.attempts, 1, "a refusal is not retried")
        XCTAssertTrue(unsigned?.description.contains("unsigned") == true && unsigned?.description.contains("configure the access key") == true,
                      unsigned?.description ?? "")
        assertS3Error("AccessDenied") { try anonymous.putObject(bucket: bucket, key: "intruder", bytes: [9]) }

        let wrongSecret = try server.client(secretKey: "not-the-secret")
        let mismatch = assertS3Error("SignatureDoesNotMatch") { try wrongSecret.getObject(bucket: bucket, key: "secret") }
        XCTAssertTrue(mismatch?.description.contains("check the secret key") == true, mismatch?.description ?? "")
        assertS3Error("SignatureDoesNotMatch") { try wrongSecret.putObject(bucket: bucket, key: "intruder", bytes: [9]) }

        let unknownKey = try server.client(accessKey: "AKIDNOSUCHKEY")
        let unknown = assertS3Error("InvalidAccessKeyId") { try unknownKey.listObjects(bucket: bucket) }
        XCTAssertTrue(unknown?.description.contains("check the access key ID") == true, unknown?.description ?? "")

        let reader = try server.client(accessKey: server.readerAccessKey, secretKey: server.readerSecretKey)
        XCTAssertEqual(Array(try reader.getObject(bucket: bucket, key: "secret").bytes), [1, 2, 3], "the reader may read")
        let forbidden = assertS3Error("AccessDenied") { try reader.putObject(bucket: bucket, key: "intruder", bytes: [9]) }
        XCTAssertTrue(forbidden?.description.contains("permission") == true, forbidden?.description ?? "")
        XCTAssertEqual(try server.client().listAllObjects(bucket: bucket).map(\.key), ["secret"], "nothing was written")
        XCTAssertEqual(unsigned?.pluginError.code, .invalid)
    }

    func testHTTPSWithACustomCAFile() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self, tls: true)
        let https = try XCTUnwrap(server.httpsEndpoint)
        let bucket = BucketName.fresh("tls")
        let trusted = try server.client(endpoint: https) { $0.caFile = server.caFile }
        try trusted.createBucket(bucket)
        let body = TestData.random(100_000, seed: 9)
        try trusted.putObject(bucket: bucket, key: "over-tls", bytes: body)
        XCTAssertEqual(Array(try trusted.getObject(bucket: bucket, key: "over-tls").bytes), body)
        let byName = try server.client(endpoint: https.replacingOccurrences(of: "127.0.0.1", with: "localhost")) { $0.caFile = server.caFile }
        XCTAssertEqual(try byName.headObject(bucket: bucket, key: "over-tls").size, 100_000, "the certificate names localhost too")

        let untrusting = try server.client(endpoint: https)
        let refused = assertS3Error("TLSVerificationFailed") { try untrusting.headBucket(bucket) }
        XCTAssertEqual(refused?.attempts, 1, "an untrusted certificate is not retried")
        XCTAssertTrue(refused?.description.contains("CA certificate file") == true, refused?.description ?? "")

        let otherCA = try TestSupport.temporaryDirectory(self) + "/other-ca.pem"
        let made = try TestSupport.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", otherCA + ".key",
                                        "-out", otherCA, "-days", "1", "-subj", "/CN=some other CA"])
        XCTAssertEqual(made.status, 0, made.output)
        assertS3Error("TLSVerificationFailed") { try server.client(endpoint: https) { $0.caFile = otherCA }.headBucket(bucket) }
        assertS3Error("TLSCAFileUnreadable") { try server.client(endpoint: https) { $0.caFile = "/nonexistent/ca.pem" } }
    }

    func testVirtualHostedAddressing() throws {
        let server = try TestS3Server.start(.seaweedFS, for: self, virtualHostDomain: "s3.test")
        let bucket = BucketName.fresh("vhost")
        let client = try server.client(endpoint: "http://s3.test:\(server.port)") {
            $0.addressing = .virtualHosted
            $0.resolve = ["\(bucket).s3.test:\(server.port):127.0.0.1"]
        }
        XCTAssertEqual(client.httpRequest(for: S3Client.Call(operation: "GetObject", method: "GET", bucket: bucket, key: "a b")).url,
                       "http://\(bucket).s3.test:\(server.port)/a%20b")
        try client.createBucket(bucket)
        try client.putObject(bucket: bucket, key: "dir/a b", bytes: [7, 7])
        XCTAssertEqual(try client.listAllObjects(bucket: bucket).map(\.key), ["dir/a b"])
        let pathStyle = try server.client()
        XCTAssertEqual(Array(try pathStyle.getObject(bucket: bucket, key: "dir/a b").bytes), [7, 7], "the same bucket, path-style")
    }

    func testNothingListeningIsAConnectionFailureAfterRetries() throws {
        let port = try FreePorts.take(1)[0]
        let client = try S3Client({
            var configuration = S3Configuration(endpoint: "http://127.0.0.1:\(port)",
                                                credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
            configuration.retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.02)
            return configuration
        }())
        let error = assertS3Error("ConnectionFailed") { try client.headBucket("no-server-here") }
        XCTAssertEqual(error?.attempts, 3)
        XCTAssertEqual(error?.pluginError.code, .transient)
        XCTAssertTrue(error?.description.contains("check the endpoint URL") == true, error?.description ?? "")
    }
}
