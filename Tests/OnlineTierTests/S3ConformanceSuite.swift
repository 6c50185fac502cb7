import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// One suite of S3 behaviour that every server must pass, run against SeaweedFS and moto
/// (after restic's backend test suite). Each check uses its own bucket.
struct S3ConformanceSuite {
    let client: S3Client
    let server: TestS3Server
    /// A folder for files to upload, removed with the test.
    let scratch: String

    /// PUT, GET, HEAD, ranged GET, a streamed GET, DELETE, and the errors for what is missing.
    func objectRoundTrips() throws {
        let bucket = BucketName.fresh("objects")
        try client.createBucket(bucket)
        try client.headBucket(bucket)
        let body = TestData.random(300_001, seed: 1)
        let put = try client.putObject(bucket: bucket, key: "blobs/one", bytes: body, options: PutOptions(contentType: "application/octet-stream", metadata: ["purpose": "test"]))
        XCTAssertEqual(put.etag, Digest.hex(Digest.md5(body)), "a single-part ETag is the body's MD5")

        let whole = try client.getObject(bucket: bucket, key: "blobs/one")
        XCTAssertEqual(Array(whole.bytes), body)
        XCTAssertEqual(whole.info.size, UInt64(body.count))
        XCTAssertEqual(whole.info.metadata["purpose"], "test")

        let head = try client.headObject(bucket: bucket, key: "blobs/one")
        XCTAssertEqual(head.size, UInt64(body.count))
        XCTAssertEqual(head.etag, put.etag)
        XCTAssertNotNil(head.lastModified)

        let range: Range<UInt64> = 123_456..<200_000
        let part = try client.getObject(bucket: bucket, key: "blobs/one", range: range)
        XCTAssertEqual(Array(part.bytes), Array(body[123_456..<200_000]))
        XCTAssertEqual(part.info.size, UInt64(body.count), "size comes from Content-Range, not the range's length")
        let tail = try client.getObject(bucket: bucket, key: "blobs/one", range: 300_000..<300_001)
        XCTAssertEqual(Array(tail.bytes), [body[300_000]])

        var streamed: [UInt8] = []
        var pieces = 0
        _ = try client.getObject(bucket: bucket, key: "blobs/one") { piece in
            streamed += piece
            pieces += 1
        }
        XCTAssertEqual(streamed, body)
        XCTAssertGreaterThanOrEqual(pieces, 1)

        let empty = try client.putObject(bucket: bucket, key: "empty", bytes: [])
        XCTAssertEqual(empty.etag, Digest.hex(Digest.md5([UInt8]())))
        XCTAssertEqual(try client.getObject(bucket: bucket, key: "empty").bytes.count, 0)

        try client.deleteObject(bucket: bucket, key: "blobs/one")
        let missing = assertS3Error("NoSuchKey") { try client.getObject(bucket: bucket, key: "blobs/one") }
        XCTAssertEqual(missing?.httpStatus, 404)
        XCTAssertEqual(missing?.operation, "GetObject")
        XCTAssertTrue(missing?.description.contains("s3://\(bucket)/blobs/one") == true, missing?.description ?? "")
        assertS3Error("NoSuchKey") { try client.headObject(bucket: bucket, key: "blobs/one") }
        let noBucket = assertS3Error("NoSuchBucket") { try client.putObject(bucket: BucketName.fresh("absent"), key: "k", bytes: [1]) }
        XCTAssertTrue(noBucket?.description.contains("create it") == true, noBucket?.description ?? "")
        assertS3Error("NoSuchBucket") { try client.headBucket(BucketName.fresh("absent")) }
    }

    /// Keys whose characters SigV4 must encode (once, never normalised) come back unchanged.
    /// `pathLikeKeys` adds `a//b`, `x/./y` and `trailing/`, which only a pure object store
    /// keeps: SeaweedFS stores keys as file paths, so it lists `a//b` as `a/b`, turns
    /// `trailing/` into a folder, and refuses `x/./y` with InvalidRequest.
    func awkwardKeys(pathLikeKeys: Bool) throws {
        let bucket = BucketName.fresh("keys")
        try client.createBucket(bucket)
        let keys = ["dir/sub dir/a+b=c&d~é ሴ.txt", "percent%20sign", "semi;colon,comma:(paren)'quote'\"",
                    "star*bang!at@hash#dollar$", "plus+and space"] + (pathLikeKeys ? ["a//b", "x/./y", "x/../y", "trailing/"] : [])
        for (index, key) in keys.enumerated() {
            try client.putObject(bucket: bucket, key: key, bytes: [UInt8(index)])
            XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: key).bytes), [UInt8(index)], key)
        }
        XCTAssertEqual(Set(try client.listAllObjects(bucket: bucket).map(\.key)), Set(keys))
        XCTAssertThrowsError(try client.putObject(bucket: bucket, key: "bell\u{7}", bytes: [1])) { error in
            XCTAssertEqual((error as? S3Error)?.code, "InvalidArgument")
        }
        XCTAssertThrowsError(try client.createBucket("Not_A_Bucket")) { error in
            XCTAssertEqual((error as? S3Error)?.code, "InvalidBucketName")
        }
    }

    /// ListObjectsV2 page by page, with a prefix and a delimiter.
    func listingPages() throws {
        let bucket = BucketName.fresh("listing")
        try client.createBucket(bucket)
        let keys = (0..<25).map { String(format: "chunks/%02d/%04d", $0 % 3, $0) } + ["index/a", "index/b", "top"]
        try client.concurrently(keys.count) { index in
            _ = try client.putObject(bucket: bucket, key: keys[index], bytes: Array(repeating: UInt8(index), count: index + 1))
        }
        var pages: [ObjectPage] = []
        var token: String?
        repeat {
            let page = try client.listObjects(bucket: bucket, prefix: "chunks/", continuationToken: token, maxKeys: 10)
            pages.append(page)
            token = page.nextToken
        } while token != nil && pages.count < 10
        XCTAssertEqual(pages.map(\.objects.count), [10, 10, 5])
        XCTAssertEqual(pages.flatMap(\.objects).map(\.key), keys.filter { $0.hasPrefix("chunks/") }.sorted())
        let sizes = Dictionary(uniqueKeysWithValues: try client.listAllObjects(bucket: bucket).map { ($0.key, $0.size) })
        XCTAssertEqual(sizes.count, keys.count)
        XCTAssertEqual(sizes["top"], UInt64(keys.count))
        let rolled = try client.listObjects(bucket: bucket, delimiter: "/")
        XCTAssertEqual(Set(rolled.commonPrefixes), ["chunks/", "index/"])
        XCTAssertEqual(rolled.objects.map(\.key), ["top"])
    }

    /// Multipart upload through `upload` (parts in parallel), from memory and from a file, and
    /// the protocol's own calls: list and abort an unfinished upload.
    func multipartUploads() throws {
        let bucket = BucketName.fresh("multipart")
        try client.createBucket(bucket)
        let body = TestData.random(12 << 20 + 3, seed: 2)
        let fromMemory = try client.upload(bucket: bucket, key: "large/memory", body: .bytes(body), partSize: 5 << 20)
        XCTAssertTrue(fromMemory.etag.hasSuffix("-3"), "a multipart ETag ends in -PARTS: \(fromMemory.etag)")
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "large/memory").bytes), body)

        let file = scratch + "/large.bin"
        try Data(body).write(to: URL(fileURLWithPath: file))
        _ = try client.upload(bucket: bucket, key: "large/file", body: .file(path: file, offset: 0, length: UInt64(body.count)), partSize: 5 << 20)
        let middle = try client.getObject(bucket: bucket, key: "large/file", range: (5 << 20) - 10..<(5 << 20) + 10)
        XCTAssertEqual(Array(middle.bytes), Array(body[(5 << 20) - 10..<(5 << 20) + 10]), "bytes across a part boundary")
        XCTAssertEqual(try client.headObject(bucket: bucket, key: "large/file").size, UInt64(body.count))

        let unfinished = try client.createMultipartUpload(bucket: bucket, key: "large/abandoned")
        _ = try client.uploadPart(bucket: bucket, upload: unfinished, number: 1, body: .bytes(Array(body[0..<(5 << 20)])))
        XCTAssertEqual(try client.listMultipartUploads(bucket: bucket).map(\.uploadId), [unfinished.uploadId])
        try client.abortMultipartUpload(bucket: bucket, key: "large/abandoned", uploadId: unfinished.uploadId)
        XCTAssertEqual(try client.listMultipartUploads(bucket: bucket).count, 0)
        // moto answers a completion of an aborted upload with an HTML 500 page; SeaweedFS with NoSuchUpload.
        XCTAssertThrowsError(try client.completeMultipartUpload(bucket: bucket, upload: unfinished, parts: [])) { error in
            if server.kind == .seaweedFS { XCTAssertEqual((error as? S3Error)?.code, "NoSuchUpload", "\(error)") }
        }
        assertS3Error("NoSuchKey") { try client.headObject(bucket: bucket, key: "large/abandoned") }
    }

    /// Both integrity headers are accepted, and (where the server checks them, `verifiesChecksums`)
    /// a body that does not match its Content-MD5 or its x-amz-checksum-sha256 is refused and
    /// not stored. moto stores such bodies without checking; SeaweedFS refuses both.
    func integrityChecks(verifiesChecksums: Bool) throws {
        let bucket = BucketName.fresh("integrity")
        try client.createBucket(bucket)
        let body = TestData.random(70_000, seed: 3)
        for check in [IntegrityCheck.md5, .sha256, .none] {
            try client.putObject(bucket: bucket, key: "checked", bytes: body, options: PutOptions(integrity: check))
            XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "checked").bytes), body, "\(check)")
        }
        guard verifiesChecksums else { return }
        let other = [UInt8](repeating: 0, count: 10)
        for (key, headers) in [("wrong-md5", [("Content-MD5", Digest.base64(Digest.md5(other)))]),
                               ("wrong-sha256", [("x-amz-sdk-checksum-algorithm", "SHA256"),
                                                 ("x-amz-checksum-sha256", Digest.base64(Digest.sha256(other)))])] {
            var call = S3Client.Call(operation: "PutObject", method: "PUT", bucket: bucket, key: key)
            call.body = .bytes(body)
            call.headers = headers
            let error = assertS3Error("BadDigest") { try client.send(call) }
            XCTAssertEqual(error?.pluginError.code, .corrupt)
            assertS3Error("NoSuchKey") { try client.headObject(bucket: bucket, key: key) }
        }
    }

    /// DeleteObjects removes a batch and reports each refusal.
    func batchDelete() throws {
        let bucket = BucketName.fresh("batch")
        try client.createBucket(bucket)
        let targets = (0..<30).map { DeleteTarget(key: "doomed/\($0)", versionId: nil) }
        try client.concurrently(targets.count) { _ = try client.putObject(bucket: bucket, key: targets[$0].key, bytes: [UInt8($0)]) }
        try client.putObject(bucket: bucket, key: "kept", bytes: [1])
        let result = try client.deleteObjects(bucket: bucket, targets)
        XCTAssertEqual(result.deleted.count, 30)
        XCTAssertTrue(result.failed.isEmpty, "\(result.failed)")
        XCTAssertEqual(try client.listAllObjects(bucket: bucket).map(\.key), ["kept"])
    }

    /// A body signed chunk by chunk as it streams from a file (STREAMING-AWS4-HMAC-SHA256-PAYLOAD),
    /// and one sent UNSIGNED-PAYLOAD, arrive intact.
    func payloadSigningModes() throws {
        let bucket = BucketName.fresh("signing")
        try client.createBucket(bucket)
        let body = TestData.random(1_000_003, seed: 4)
        let file = scratch + "/streamed.bin"
        try Data(body).write(to: URL(fileURLWithPath: file))
        for (name, mode) in [("streaming", S3Configuration.PayloadSigning.streaming(chunkSize: 64 << 10)), ("unsigned", .unsigned)] {
            let client = try server.client { $0.payloadSigning = mode }
            try client.putObject(bucket: bucket, key: name, body: .file(path: file, offset: 1, length: UInt64(body.count - 1)))
            XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: name).bytes), Array(body[1...]), name)
        }
    }

    /// Versions of a versioned (Object Lock) bucket: a DELETE without a version id only adds a
    /// delete marker; deleting the versions frees them.
    func versionListing(bucket: String) throws {
        let first = try client.putObject(bucket: bucket, key: "versioned/k", bytes: [1])
        let second = try client.putObject(bucket: bucket, key: "versioned/k", bytes: [2])
        XCTAssertNotNil(first.versionId)
        XCTAssertNotEqual(first.versionId, second.versionId)
        let marker = try client.deleteObject(bucket: bucket, key: "versioned/k")
        XCTAssertTrue(marker.isDeleteMarker)
        assertS3Error("NoSuchKey") { try client.getObject(bucket: bucket, key: "versioned/k") }
        XCTAssertEqual(Array(try client.getObject(bucket: bucket, key: "versioned/k", versionId: first.versionId).bytes), [1],
                       "the data stays behind the delete marker")
        let versions = try client.listAllObjectVersions(bucket: bucket, prefix: "versioned/")
        XCTAssertEqual(versions.filter { !$0.isDeleteMarker }.compactMap(\.versionId).sorted(),
                       [first.versionId, second.versionId].compactMap { $0 }.sorted())
        XCTAssertEqual(versions.filter(\.isDeleteMarker).count, 1)
        var paged: [ObjectVersion] = []
        var next: (keyMarker: String, versionIdMarker: String?)?
        repeat {
            let page = try client.listObjectVersions(bucket: bucket, prefix: "versioned/", keyMarker: next?.keyMarker,
                                                     versionIdMarker: next?.versionIdMarker, maxKeys: 1)
            XCTAssertLessThanOrEqual(page.versions.count, 1)
            paged += page.versions
            next = page.next
        } while next != nil && paged.count < 10
        // moto lists all versions before all delete markers, so compare without order.
        XCTAssertEqual(paged.sorted { $0.versionId < $1.versionId }, versions.sorted { $0.versionId < $1.versionId },
                       "pages of one entry give the same listing")
        XCTAssertEqual(versions.first { $0.isLatest }?.isDeleteMarker, true)
        for version in versions { try client.deleteObject(bucket: bucket, key: version.key, versionId: version.versionId) }
        XCTAssertEqual(try client.listAllObjectVersions(bucket: bucket, prefix: "versioned/").count, 0)
    }
}
