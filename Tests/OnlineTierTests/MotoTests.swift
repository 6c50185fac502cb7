import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// The same conformance suite against a second S3 implementation, moto in server mode, for
/// what two servers written independently agree on. moto accepts any credentials, so the
/// refusal tests run against SeaweedFS only.
final class MotoTests: XCTestCase {
    private func suite() throws -> S3ConformanceSuite {
        let server = try TestS3Server.start(.moto, for: self)
        return S3ConformanceSuite(client: try server.client(), server: server, scratch: try TestSupport.temporaryDirectory(self))
    }

    func testObjectRoundTrips() throws { try suite().objectRoundTrips() }
    func testAwkwardKeys() throws { try suite().awkwardKeys(pathLikeKeys: true) }
    func testListingPages() throws { try suite().listingPages() }
    func testMultipartUploads() throws { try suite().multipartUploads() }
    func testIntegrityChecks() throws { try suite().integrityChecks(verifiesChecksums: false) }
    func testBatchDelete() throws { try suite().batchDelete() }
    func testPayloadSigningModes() throws { try suite().payloadSigningModes() }

    func testObjectLock() throws {
        let suite = try suite()
        let client = suite.client
        let bucket = BucketName.fresh("locked")
        try client.createBucket(bucket, objectLockEnabled: true)
        XCTAssertEqual(try client.getObjectLockConfiguration(bucket).enabled, true)
        try suite.versionListing(bucket: bucket)

        let until = Date().addingTimeInterval(86_400).rounded()
        let compliance = try client.putObject(bucket: bucket, key: "c", bytes: [1],
                                              options: PutOptions(retention: ObjectRetention(mode: .compliance, retainUntil: until)))
        // moto 5.2 does not implement GetObjectRetention (a GET ?retention returns the object's
        // body), so the retention is read from HEAD here.
        XCTAssertEqual(try client.headObject(bucket: bucket, key: "c", versionId: compliance.versionId).retention,
                       ObjectRetention(mode: .compliance, retainUntil: until))
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "c", versionId: compliance.versionId, bypassGovernance: true) }

        let governance = try client.putObject(bucket: bucket, key: "g", bytes: [2],
                                              options: PutOptions(retention: ObjectRetention(mode: .governance, retainUntil: until)))
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "g", versionId: governance.versionId) }
        try client.deleteObject(bucket: bucket, key: "g", versionId: governance.versionId, bypassGovernance: true)

        let plain = BucketName.fresh("unlocked")
        try client.createBucket(plain)
        assertS3Error("ObjectLockConfigurationNotFoundError") { try client.getObjectLockConfiguration(plain) }
    }
}
