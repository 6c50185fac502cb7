import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// Object Lock as the installed SeaweedFS enforces it (checked here against 4.48): COMPLIANCE
/// blocks deleting a version, even with the bypass header, and cannot be shortened;
/// GOVERNANCE blocks it unless the bypass header is sent; a DELETE without a version only adds
/// a delete marker; an expired lock no longer protects.
final class SeaweedFSObjectLockTests: XCTestCase {
    private var server: TestS3Server!
    private var client: S3Client!
    private var bucket = ""

    override func setUpWithError() throws {
        server = try TestS3Server.start(.seaweedFS, for: self)
        client = try server.client()
        bucket = BucketName.fresh("locked")
        try client.createBucket(bucket, objectLockEnabled: true)
    }

    func testBucketCreatedWithObjectLockHasItAndVersioning() throws {
        XCTAssertEqual(try client.getObjectLockConfiguration(bucket).enabled, true)
        XCTAssertEqual(try client.getBucketVersioning(bucket), "Enabled")
        let plain = BucketName.fresh("unlocked")
        try client.createBucket(plain)
        let missing = assertS3Error("ObjectLockConfigurationNotFoundError") { try client.getObjectLockConfiguration(plain) }
        XCTAssertTrue(missing?.description.contains("create a new bucket with Object Lock enabled") == true, missing?.description ?? "")
        XCTAssertEqual(missing?.pluginError.code, .notFound)
    }

    func testComplianceBlocksVersionDeletionEvenWithTheBypassHeader() throws {
        let until = Date().addingTimeInterval(86_400).rounded()
        let put = try client.putObject(bucket: bucket, key: "chunks/c1", bytes: [1, 2, 3],
                                       options: PutOptions(retention: ObjectRetention(mode: .compliance, retainUntil: until)))
        let version = try XCTUnwrap(put.versionId)
        XCTAssertEqual(try client.headObject(bucket: bucket, key: "chunks/c1").retention, ObjectRetention(mode: .compliance, retainUntil: until))
        XCTAssertEqual(try client.getObjectRetention(bucket: bucket, key: "chunks/c1", versionId: version),
                       ObjectRetention(mode: .compliance, retainUntil: until))

        let refused = assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "chunks/c1", versionId: version) }
        XCTAssertTrue(refused?.description.contains("locked by Object Lock") == true, refused?.description ?? "")
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "chunks/c1", versionId: version, bypassGovernance: true) }
        let batch = try client.deleteObjects(bucket: bucket, [DeleteTarget(key: "chunks/c1", versionId: version)], bypassGovernance: true)
        XCTAssertEqual(batch.failed.map(\.code), ["AccessDenied"])
        XCTAssertTrue(batch.deleted.isEmpty)

        assertS3Error("AccessDenied") {
            try client.putObjectRetention(bucket: bucket, key: "chunks/c1", versionId: version,
                                          retention: ObjectRetention(mode: .compliance, retainUntil: until.addingTimeInterval(-3600)))
        }
        assertS3Error("AccessDenied") {
            try client.putObjectRetention(bucket: bucket, key: "chunks/c1", versionId: version,
                                          retention: ObjectRetention(mode: .governance, retainUntil: until), bypassGovernance: true)
        }
        let later = until.addingTimeInterval(86_400)
        try client.putObjectRetention(bucket: bucket, key: "chunks/c1", versionId: version,
                                      retention: ObjectRetention(mode: .compliance, retainUntil: later))
        XCTAssertEqual(try client.getObjectRetention(bucket: bucket, key: "chunks/c1", versionId: version)?.retainUntil, later,
                       "a COMPLIANCE lock can be extended")
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "chunks/c1", versionId: version).bytes), [1, 2, 3])
    }

    func testGovernanceIsBypassedOnlyWithTheHeader() throws {
        let retention = ObjectRetention(mode: .governance, retainUntil: Date().addingTimeInterval(86_400).rounded())
        let put = try client.putObject(bucket: bucket, key: "chunks/g1", bytes: [4], options: PutOptions(retention: retention, integrity: .md5))
        let version = try XCTUnwrap(put.versionId)
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "chunks/g1", versionId: version) }
        try client.deleteObject(bucket: bucket, key: "chunks/g1", versionId: version, bypassGovernance: true)
        assertS3Error("NoSuchVersion") { try client.headObject(bucket: bucket, key: "chunks/g1", versionId: version) }
    }

    func testADeleteWithoutVersionOnlyAddsAMarker() throws {
        let retention = ObjectRetention(mode: .compliance, retainUntil: Date().addingTimeInterval(86_400).rounded())
        let put = try client.putObject(bucket: bucket, key: "chunks/m1", bytes: [5], options: PutOptions(retention: retention))
        let marker = try client.deleteObject(bucket: bucket, key: "chunks/m1")
        XCTAssertTrue(marker.isDeleteMarker)
        assertS3Error("NoSuchKey") { try client.getObject(bucket: bucket, key: "chunks/m1") }
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "chunks/m1", versionId: put.versionId).bytes), [5])
        let versions = try client.listAllObjectVersions(bucket: bucket, prefix: "chunks/m1")
        XCTAssertEqual(versions.map(\.isDeleteMarker).sorted { !$0 && $1 }, [false, true])
        // The marker itself holds no lock and may go.
        try client.deleteObject(bucket: bucket, key: "chunks/m1", versionId: try XCTUnwrap(marker.versionId))
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "chunks/m1").bytes), [5])
    }

    func testAnExpiredLockNoLongerProtects() throws {
        let retention = ObjectRetention(mode: .compliance, retainUntil: Date().addingTimeInterval(3).rounded(.up))
        let put = try client.putObject(bucket: bucket, key: "chunks/e1", bytes: [6], options: PutOptions(retention: retention))
        let version = try XCTUnwrap(put.versionId)
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "chunks/e1", versionId: version) }
        Thread.sleep(until: retention.retainUntil.addingTimeInterval(1.5))
        try client.deleteObject(bucket: bucket, key: "chunks/e1", versionId: version)
        XCTAssertTrue(try client.listAllObjectVersions(bucket: bucket, prefix: "chunks/e1").isEmpty)
    }

    func testMultipartUploadCarriesTheLock() throws {
        let retention = ObjectRetention(mode: .compliance, retainUntil: Date().addingTimeInterval(86_400).rounded())
        let body = TestData.random(11 << 20, seed: 5)
        let put = try client.upload(bucket: bucket, key: "indexes/big", body: .bytes(body), options: PutOptions(retention: retention),
                                    partSize: 5 << 20)
        XCTAssertEqual(try client.headObject(bucket: bucket, key: "indexes/big").retention, retention)
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "indexes/big").bytes), body)
        assertS3Error("AccessDenied") { try client.deleteObject(bucket: bucket, key: "indexes/big", versionId: try XCTUnwrap(put.versionId)) }
    }

    func testVersionsAndDeleteMarkers() throws {
        try S3ConformanceSuite(client: client, server: server, scratch: try TestSupport.temporaryDirectory(self)).versionListing(bucket: bucket)
    }
}

extension Date {
    /// Whole seconds: S3 keeps retain-until dates to the second (some servers to the millisecond).
    func rounded(_ rule: FloatingPointRoundingRule = .down) -> Date {
        Date(timeIntervalSince1970: timeIntervalSince1970.rounded(rule))
    }
}
