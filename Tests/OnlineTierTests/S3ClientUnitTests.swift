import Foundation
import TestSupport
import XCTest
@testable import OnlineTier

/// The client's parts that need no server: XML, error replies, dates, settings, the pool.
final class S3ClientUnitTests: XCTestCase {
    func testXMLParserReadsWhatS3Sends() throws {
        let document = """
            \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><IsTruncated>false</IsTruncated>
              <Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#x1234;</Key><Size>12</Size></Contents>
              <Contents><Key><![CDATA[raw <text> & more]]></Key><Size/></Contents>
              <s3:Prefixed xmlns:s3="x" attribute='v &amp; w'>p</s3:Prefixed>
            </ListBucketResult>
            """
        let root = try S3XMLParser.parse(Array(document.utf8))
        XCTAssertEqual(root.name, "ListBucketResult")
        XCTAssertEqual(root.attributes["xmlns"], "http://s3.amazonaws.com/doc/2006-03-01/")
        XCTAssertEqual(root.children("Contents").map { $0.value("Key") }, ["a & b <c> \"d\" 'e' éሴ", "raw <text> & more"])
        XCTAssertEqual(root.children("Contents").last?.value("Size"), "")
        XCTAssertEqual(root.child("Prefixed")?.text, "p")
        XCTAssertEqual(root.child("Prefixed")?.attributes["attribute"], "v & w")
        XCTAssertNil(root.value("Missing"))
    }

    func testXMLParserRefusesMalformedDocuments() {
        for (document, reason) in [("<a><b></a>", "closes"), ("<a>", "ends inside"), ("<a>&bogus;</a>", "unknown entity"),
                                   ("<a>&amp</a>", "starts no entity"), ("<!DOCTYPE x><a/>", "DOCTYPE"), ("<a/><b/>", "after the root"),
                                   ("text", "root element"), ("", "root element"), ("<a x=1/>", "quoted"),
                                   (String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100), "nest deeper")] {
            XCTAssertThrowsError(try S3XMLParser.parse(Array(document.utf8)), document) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(document): \(error)")
            }
        }
    }

    func testXMLBuilderEscapesValues() throws {
        var builder = XMLBuilder()
        builder.open("Delete", namespace: XMLBuilder.s3Namespace)
        builder.leaf("Key", "a<b>&\"c'\r")
        builder.close("Delete")
        XCTAssertEqual(try S3XMLParser.parse(builder.bytes).value("Key"), "a<b>&\"c'\r", "what is written reads back")
    }

    func testErrorRepliesBecomeCodesWithFixes() throws {
        let call = S3Client.Call(operation: "DeleteObject", method: "DELETE", bucket: "b", key: "k", versionId: "v1")
        let body = Data("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>R1</RequestId></Error>".utf8)
        var error = S3Client.serverError(HTTPResponse(status: 403, headers: [], body: body), call: call)
        error.fill(call, endpoint: "http://s3.test")
        XCTAssertEqual(error.code, "AccessDenied")
        XCTAssertEqual(error.requestId, "R1")
        XCTAssertFalse(error.isRetryable)
        XCTAssertEqual(error.description, "DeleteObject s3://b/k (version v1) at http://s3.test: AccessDenied (HTTP 403): Access Denied; "
                       + "the version is still locked by Object Lock (it cannot be deleted or its lock shortened before its retain-until "
                       + "date), or the credentials lack that permission")

        let headCall = S3Client.Call(operation: "HeadObject", method: "HEAD", bucket: "b", key: "k")
        XCTAssertEqual(S3Client.serverError(HTTPResponse(status: 404, headers: [], body: Data()), call: headCall).code, "NoSuchKey")
        XCTAssertEqual(S3Client.serverError(HTTPResponse(status: 404, headers: [], body: Data()),
                                            call: S3Client.Call(operation: "HeadBucket", method: "HEAD", bucket: "b")).code, "NoSuchBucket")
        let unavailable = S3Client.serverError(HTTPResponse(status: 503, headers: [], body: Data()), call: headCall)
        XCTAssertEqual(unavailable.code, "ServiceUnavailable")
        XCTAssertTrue(unavailable.isRetryable)
        let slow = S3Client.serverError(HTTPResponse(status: 503, headers: [],
                                                     body: Data("<Error><Code>SlowDown</Code></Error>".utf8)), call: headCall)
        XCTAssertEqual(slow.code, "SlowDown")
        XCTAssertEqual(slow.pluginError.code, .transient)
        let html = S3Client.serverError(HTTPResponse(status: 502, headers: [], body: Data("<html>bad gateway</html>".utf8)), call: headCall)
        XCTAssertEqual(html.code, "HTTP502")
        XCTAssertTrue(html.isRetryable)
        XCTAssertEqual(html.serverMessage, "<html>bad gateway</html>")
    }

    func testHTTPDates() {
        XCTAssertEqual(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), Date(timeIntervalSince1970: 784_111_777))
        XCTAssertNil(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT"))
        XCTAssertNil(HTTPDate.parse("Sun, 06 Foo 1994 08:49:37 GMT"))
        XCTAssertNil(HTTPDate.parse("Sun, 06 Nov 1994 25:49:37 GMT"))
    }

    func testSettingsAreCheckedBeforeAnyRequest() {
        func refused(_ configure: (inout S3Configuration) -> Void) -> String? {
            var configuration = S3Configuration(endpoint: "http://127.0.0.1:1", credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
            configure(&configuration)
            do {
                _ = try S3Client(configuration)
                return nil
            } catch {
                return "\(error)"
            }
        }
        XCTAssertNil(refused { _ in })
        XCTAssertTrue(refused { $0.endpoint = "ftp://host" }?.contains("http:// or https://") == true)
        XCTAssertTrue(refused { $0.endpoint = "https://host/bucket" }?.contains("has a path") == true)
        XCTAssertTrue(refused { $0.endpoint = "https://host:70000" }?.contains("70000") == true)
        XCTAssertTrue(refused { $0.credentials = S3Credentials(accessKeyID: "a", secretAccessKey: "") }?.contains("secret key") == true)
        XCTAssertTrue(refused { $0.region = "us east" }?.contains("region") == true)
        XCTAssertTrue(refused { $0.caFile = "/nonexistent.pem" }?.contains("TLSCAFileUnreadable") == true)
        XCTAssertEqual(try S3Endpoint("https://[::1]:9000").url, "https://[::1]:9000")
        XCTAssertEqual(try S3Endpoint("HTTPS://S3.Example.com").url, "https://s3.example.com")
        XCTAssertFalse(S3Credentials(accessKeyID: "AK", secretAccessKey: "very-secret").description.contains("very-secret"))
    }

    func testPathStyleRequestsEncodeTheKeyOnce() throws {
        let client = try S3Client(S3Configuration(endpoint: "https://s3.example.com:8443",
                                                  credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b")))
        var call = S3Client.Call(operation: "GetObject", method: "GET", bucket: "my-bucket", key: "dir/a b+c/%41/./x")
        call.query = [("versionId", "v/1"), ("acl", "")]
        XCTAssertEqual(client.httpRequest(for: call).url, "https://s3.example.com:8443/my-bucket/dir/a%20b%2Bc/%2541/./x?acl=&versionId=v%2F1")
        XCTAssertEqual(client.httpRequest(for: S3Client.Call(operation: "ListBuckets", method: "GET")).url, "https://s3.example.com:8443/")
    }

    func testRequestPoolKeepsOrderBoundsThreadsAndStopsAtTheFirstError() throws {
        let lock = NSLock()
        var running = 0, peak = 0
        let results = try RequestPool.map(40, limit: 4) { index -> Int in
            lock.lock(); running += 1; peak = max(peak, running); lock.unlock()
            usleep(2000)
            lock.lock(); running -= 1; lock.unlock()
            return index * 2
        }
        XCTAssertEqual(results, (0..<40).map { $0 * 2 })
        XCTAssertLessThanOrEqual(peak, 4)
        var started = 0
        XCTAssertThrowsError(try RequestPool.map(1000, limit: 3) { index -> Int in
            lock.lock(); started += 1; lock.unlock()
            if index == 5 { throw S3Error.local("boom", code: "InternalError") }
            usleep(1000)
            return index
        }) { XCTAssertTrue("\($0)".contains("boom")) }
        XCTAssertLessThan(started, 1000, "no new items start after an error")
    }

    func testRequestBodiesSliceAndReadBack() throws {
        let bytes = Array(0..<100).map(UInt8.init)
        let directory = try TestSupport.temporaryDirectory(self)
        let path = directory + "/body"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        for body in [RequestBody.bytes(bytes), .data(Data(bytes)), .file(path: path, offset: 0, length: 100)] {
            var out: [UInt8] = []
            try body.slice(offset: 10, length: 30).forEachPiece { out += $0 }
            XCTAssertEqual(out, Array(bytes[10..<40]))
        }
        let reader = try RequestBody.file(path: path, offset: 90, length: 20).makeReader()
        var buffer = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }, 10)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }) { error in
            XCTAssertTrue("\(error)".contains("changed during the upload"), "\(error)")
        }
        XCTAssertThrowsError(try RequestBody.file(path: directory + "/missing", offset: 0, length: 1).makeReader()) { error in
            XCTAssertEqual((error as? S3Error)?.code, "LocalFileError")
        }
    }
}
