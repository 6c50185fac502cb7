import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// The S3 client against a real SeaweedFS (`weed mini`), which enforces SigV4 and Object Lock.
final class SeaweedFSTests: XCTestCase {
    private func suite() throws -> S3ConformanceSuite {
        let server = try TestS3Server.start(.seaweedFS, for: self)
        return S3ConformanceSuite(client: try server.client(), server: server, scratch: try TestSupport.temporaryDirectory(self))
    }

    func testObjectRoundTrips() throws { try suite().objectRoundTrips() }
    func testAwkwardKeys() throws { try suite().awkwardKeys(pathLikeKeys: false) }
    func testListingPages() throws { try suite().listingPages() }
    func testMultipartUploads() throws { try suite().multipartUploads() }
    func testIntegrityChecks() throws { try suite().integrityChecks(verifiesChecksums: true) }
    func testBatchDelete() throws { try suite().batchDelete() }
    func testPayloadSigningModes() throws { try suite().payloadSigningModes() }
}
