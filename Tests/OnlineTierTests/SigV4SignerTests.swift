import Foundation
import XCTest
@testable import OnlineTier

/// The signer against AWS's published vectors: the aws-c-auth suite (service "service") and
/// the worked examples of the S3 API reference (service "s3"). These are the only check of
/// payload hashing: neither SeaweedFS nor moto compares `x-amz-content-sha256` with the body.
final class SigV4SignerTests: XCTestCase {
    private let suiteTime = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    private let s3Time = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    private let s3Credentials = S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

    func testEveryApplicableAWSSuiteVector() throws {
        XCTAssertEqual(SigV4TestVectors.cases.count, 30)
        for vector in SigV4TestVectors.cases {
            var (request, body) = try parse(vector.request)
            let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: SigV4TestVectors.accessKey,
                                                                secretAccessKey: SigV4TestVectors.secretKey,
                                                                sessionToken: vector.sessionToken),
                                     region: "us-east-1", service: "service", addsContentHashHeader: false)
            let bodyHash = Digest.hex(Digest.sha256(body))
            if let claimed = request.header("x-amz-content-sha256"), !vector.unsignedPayload {
                XCTAssertEqual(claimed, bodyHash, "\(vector.name): the suite's x-amz-content-sha256 is the body's SHA-256")
            }
            signer.sign(&request, payloadHash: vector.unsignedPayload ? SigV4Signer.unsignedPayload : bodyHash, at: suiteTime)
            XCTAssertEqual(request.header("authorization"), vector.authorization, vector.name)
        }
    }

    /// A changed byte anywhere changes the signature: the vectors are not passed by accident.
    func testSignatureDependsOnEveryInput() throws {
        let vector = try XCTUnwrap(SigV4TestVectors.cases.first { $0.name == "post-x-www-form-urlencoded" })
        var (request, body) = try parse(vector.request)
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: SigV4TestVectors.accessKey, secretAccessKey: SigV4TestVectors.secretKey),
                                 region: "us-east-1", service: "service", addsContentHashHeader: false)
        let reference = signer.signature(of: request, payloadHash: Digest.hex(Digest.sha256(body)), timestamp: .init(suiteTime)).signature
        body[0] ^= 1
        XCTAssertNotEqual(signer.signature(of: request, payloadHash: Digest.hex(Digest.sha256(body)), timestamp: .init(suiteTime)).signature, reference)
        var otherRegion = signer
        otherRegion.region = "eu-west-1"
        request.headers.append(("X-Extra", "1"))
        XCTAssertNotEqual(otherRegion.signature(of: request, payloadHash: Digest.emptySHA256Hex, timestamp: .init(suiteTime)).signature, reference)
    }

    /// S3 API reference, "Signature Calculations for the Authorization Header: Transferring
    /// Payload in a Single Chunk", GET Object: the first ten bytes of test.txt.
    func testS3DocumentationGetObjectWithRange() throws {
        var request = HTTPRequest(method: "GET", scheme: "https", host: "examplebucket.s3.amazonaws.com", port: 443,
                                  path: URIEncoding.encodePath("/test.txt"))
        request.headers = [("Range", "bytes=0-9")]
        let signature = SigV4Signer(credentials: s3Credentials, region: "us-east-1")
            .sign(&request, payloadHash: Digest.emptySHA256Hex, at: s3Time)
        XCTAssertEqual(signature.canonicalRequest, """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        XCTAssertEqual(signature.stringToSign.split(separator: "\n").last, "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
        XCTAssertEqual(signature.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        XCTAssertEqual(request.header("authorization"),
                       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                       + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                       + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// The same page's PUT Object (a `$` in the key, a Date header, a signed body), GET Bucket
    /// Lifecycle (a query name without value) and GET Bucket (a query to sort).
    func testS3DocumentationPutObjectLifecycleAndList() {
        let signer = SigV4Signer(credentials: s3Credentials, region: "us-east-1")
        let body = Array("Welcome to Amazon S3.".utf8)
        XCTAssertEqual(Digest.hex(Digest.sha256(body)), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        var put = HTTPRequest(method: "PUT", scheme: "https", host: "examplebucket.s3.amazonaws.com", port: 443,
                              path: URIEncoding.encodePath("/test$file.text"))
        put.headers = [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")]
        XCTAssertEqual(put.path, "/test%24file.text")
        let putSignature = signer.sign(&put, payloadHash: Digest.hex(Digest.sha256(body)), at: s3Time)
        XCTAssertEqual(putSignature.signedHeaders, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        XCTAssertEqual(putSignature.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")

        var lifecycle = HTTPRequest(method: "GET", scheme: "https", host: "examplebucket.s3.amazonaws.com", port: 443, path: "/")
        lifecycle.query = [("lifecycle", "")]
        XCTAssertEqual(signer.sign(&lifecycle, payloadHash: Digest.emptySHA256Hex, at: s3Time).signature,
                       "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")

        var list = HTTPRequest(method: "GET", scheme: "https", host: "examplebucket.s3.amazonaws.com", port: 443, path: "/")
        list.query = [("prefix", "J"), ("max-keys", "2")]
        XCTAssertEqual(list.canonicalQuery, "max-keys=2&prefix=J")
        XCTAssertEqual(signer.sign(&list, payloadHash: Digest.emptySHA256Hex, at: s3Time).signature,
                       "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    /// S3 API reference, "Transferring Payload in Multiple Chunks": 66 560 bytes of `a` in
    /// 64 KiB chunks; the seed signature and the three chunk signatures it publishes.
    func testS3DocumentationStreamingUpload() throws {
        let signer = SigV4Signer(credentials: s3Credentials, region: "us-east-1")
        var request = HTTPRequest(method: "PUT", scheme: "https", host: "s3.amazonaws.com", port: 443,
                                  path: "/examplebucket/chunkObject.txt")
        XCTAssertEqual(AWSChunkedReader.encodedLength(decodedLength: 66560, chunkSize: 65536), 66824)
        request.headers = [("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("Content-Encoding", "aws-chunked"),
                           ("x-amz-decoded-content-length", "66560"), ("Content-Length", "66824")]
        let seed = signer.sign(&request, payloadHash: SigV4Signer.streamingPayload, at: s3Time)
        XCTAssertEqual(seed.signedHeaders, "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class")
        XCTAssertEqual(seed.signature, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")

        let reader = AWSChunkedReader(source: MemoryBodyReader(bytes: [UInt8](repeating: UInt8(ascii: "a"), count: 66560)),
                                      decodedLength: 66560, chunkSize: 65536, signer: signer, seed: seed)
        var encoded: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1000)  // smaller than a chunk: reads resume mid-chunk
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if count == 0 { break }
            encoded += buffer[0..<count]
        }
        XCTAssertEqual(encoded.count, 66824)
        let expected = "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
            + String(repeating: "a", count: 65536) + "\r\n"
            + "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
            + String(repeating: "a", count: 1024) + "\r\n"
            + "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
        XCTAssertEqual(String(decoding: encoded, as: UTF8.self), expected)
    }

    func testURIEncodingKeepsUnreservedAndEncodesTheRestOnce() {
        XCTAssertEqual(URIEncoding.encodePath("/a b/c+d/%41/ሴ/~._-"), "/a%20b/c%2Bd/%2541/%E1%88%B4/~._-")
        XCTAssertEqual(URIEncoding.encode("a/b=c&d"), "a%2Fb%3Dc%26d")
        XCTAssertEqual(URIEncoding.decode("a%2Fb%E1%88%B4+"), "a/bሴ+")
        XCTAssertNil(URIEncoding.decode("%4"))
        XCTAssertNil(URIEncoding.decode("%ZZ"))
    }

    /// Parses the suite's request format into a request and its body.
    private func parse(_ text: String) throws -> (HTTPRequest, [UInt8]) {
        let (head, body): (Substring, Substring)
        if let blank = text.range(of: "\n\n") {
            head = text[..<blank.lowerBound]
            body = text[blank.upperBound...]
        } else {
            head = Substring(text)
            body = ""
        }
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // "METHOD TARGET HTTP/1.1", where the target may contain spaces (get-space-unnormalized).
        let requestLine = lines.removeFirst().split(separator: " ")
        XCTAssertGreaterThanOrEqual(requestLine.count, 3)
        let target = requestLine.dropFirst().dropLast().joined(separator: " ")
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var request = HTTPRequest(method: String(requestLine[0]), scheme: "https", host: "example.amazonaws.com", port: 443,
                                  path: URIEncoding.encodePath(String(pathPart[0])))
        if pathPart.count == 2 {
            for item in pathPart[1].split(separator: "&") {
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                request.query.append((try XCTUnwrap(URIEncoding.decode(String(pair[0]))),
                                      try XCTUnwrap(URIEncoding.decode(pair.count > 1 ? String(pair[1]) : ""))))
            }
        }
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t", let last = request.headers.last {
                request.headers.append((last.name, line.trimmingCharacters(in: .whitespaces)))
            } else {
                let colon = try XCTUnwrap(line.firstIndex(of: ":"))
                request.headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        // The suite's files end with a newline the body does not contain.
        let bodyText = body.hasSuffix("\n") ? body.dropLast() : body
        return (request, Array(bodyText.utf8))
    }
}
