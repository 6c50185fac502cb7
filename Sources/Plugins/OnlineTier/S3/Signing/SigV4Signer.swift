import Foundation
import PluginAPI

/// AWS Signature Version 4 in the Authorization header, written from AWS's specification.
///
/// 1. Canonical request: `METHOD \n PATH \n QUERY \n HEADERS \n SIGNED-HEADERS \n PAYLOAD-HASH`.
///    PATH is the request's path exactly as sent (encoded once, never normalised); QUERY is
///    `HTTPRequest.canonicalQuery`; HEADERS is one `name:value\n` per header name, names in
///    lower case and sorted, values trimmed with inner runs of white space collapsed to one
///    space, repeated names joined with `,` in their order; SIGNED-HEADERS is the names joined
///    with `;`; PAYLOAD-HASH is the hex SHA-256 of the body, `UNSIGNED-PAYLOAD`, or
///    `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
/// 2. String to sign: `AWS4-HMAC-SHA256 \n YYYYMMDDTHHMMSSZ \n DATE/REGION/SERVICE/aws4_request \n hex(SHA-256(canonical request))`.
/// 3. Key: HMAC chain `"AWS4" + secret` → date → region → service → `aws4_request`; the
///    signature is the hex HMAC of the string to sign under that key.
///
/// Every header of the request is signed, so the transport must add only headers that may go
/// unsigned (User-Agent, Accept, Content-Length).
struct SigV4Signer: Sendable {
    static let algorithm = "AWS4-HMAC-SHA256"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"
    static let streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    var credentials: S3Credentials
    var region: String
    /// `s3` for S3; the AWS test suite uses `service`.
    var service: String = "s3"
    /// Whether signing adds `x-amz-content-sha256`, which S3 requires on every request.
    var addsContentHashHeader = true

    /// The date parts of a signature, in UTC.
    struct Timestamp: Sendable {
        /// `YYYYMMDDTHHMMSSZ`, the value of `x-amz-date`.
        var dateTime: String
        /// `YYYYMMDD`, the first element of the scope.
        var day: String

        init(_ date: Date) {
            // ISOTime gives YYYY-MM-DDTHH:MM:SS.000Z for a whole second; SigV4 wants it without separators.
            let iso = ISOTime.string(Date(timeIntervalSince1970: floor(date.timeIntervalSince1970)))
            dateTime = String(iso.prefix(19).filter { $0 != "-" && $0 != ":" }) + "Z"
            day = String(dateTime.prefix(8))
        }
    }

    /// What a signature was made of; the seed of a streaming upload needs the signature and scope.
    struct Signature {
        var canonicalRequest: String
        var stringToSign: String
        var signature: String
        var signedHeaders: String
        var timestamp: Timestamp
        var scope: String
    }

    func scope(_ timestamp: Timestamp) -> String { "\(timestamp.day)/\(region)/\(service)/aws4_request" }

    /// Adds `x-amz-date`, the session token, `x-amz-content-sha256` (when enabled) and
    /// `Authorization` to `request`.
    /// - Parameters:
    ///   - payloadHash: the hex SHA-256 of the body, or `unsignedPayload` / `streamingPayload`.
    ///   - date: the signing time; servers refuse signatures more than 15 minutes off.
    @discardableResult
    func sign(_ request: inout HTTPRequest, payloadHash: String, at date: Date) -> Signature {
        let timestamp = Timestamp(date)
        request.headers.removeAll { ["authorization", "x-amz-date"].contains($0.name.lowercased()) }
        request.headers.append(("X-Amz-Date", timestamp.dateTime))
        if let token = credentials.sessionToken, request.header("x-amz-security-token") == nil {
            request.headers.append(("X-Amz-Security-Token", token))
        }
        if addsContentHashHeader { request.setHeader("x-amz-content-sha256", payloadHash) }
        if request.header("host") == nil { request.headers.insert(("Host", request.hostHeader), at: 0) }
        let signature = self.signature(of: request, payloadHash: payloadHash, timestamp: timestamp)
        request.headers.append(("Authorization",
                                "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(signature.scope), "
                                + "SignedHeaders=\(signature.signedHeaders), Signature=\(signature.signature)"))
        return signature
    }

    /// The signature of `request` as it stands (its headers must already hold `x-amz-date`).
    func signature(of request: HTTPRequest, payloadHash: String, timestamp: Timestamp) -> Signature {
        let (headerBlock, signedHeaders) = canonicalHeaders(request.headers)
        let canonicalRequest = [request.method, request.path.isEmpty ? "/" : request.path, request.canonicalQuery,
                                headerBlock, signedHeaders, payloadHash].joined(separator: "\n")
        let scope = self.scope(timestamp)
        let stringToSign = [Self.algorithm, timestamp.dateTime, scope,
                            Digest.hex(Digest.sha256(Array(canonicalRequest.utf8)))].joined(separator: "\n")
        let signature = Digest.hex(Digest.hmacSHA256(key: signingKey(timestamp), stringToSign))
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         signedHeaders: signedHeaders, timestamp: timestamp, scope: scope)
    }

    /// The derived key for one day, region and service.
    func signingKey(_ timestamp: Timestamp) -> [UInt8] {
        var key = Digest.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), timestamp.day)
        for part in [region, service, "aws4_request"] { key = Digest.hmacSHA256(key: key, part) }
        return key
    }

    /// The signature of one chunk of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body: each chunk
    /// signs the hash of its data chained to the previous chunk's signature (the first to the
    /// request's seed signature).
    func chunkSignature(previous: String, chunkHash: String, key: [UInt8], timestamp: Timestamp) -> String {
        let stringToSign = ["AWS4-HMAC-SHA256-PAYLOAD", timestamp.dateTime, scope(timestamp), previous,
                            Digest.emptySHA256Hex, chunkHash].joined(separator: "\n")
        return Digest.hex(Digest.hmacSHA256(key: key, stringToSign))
    }

    /// The canonical header block (each line ending in a newline) and the signed-header list.
    private func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var values: [String: [String]] = [:]
        for (name, value) in headers where name.lowercased() != "authorization" {
            values[name.lowercased(), default: []].append(Self.trimmed(value))
        }
        let names = values.keys.sorted()
        let block = names.map { "\($0):\(values[$0, default: []].joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// Leading and trailing white space removed and inner runs collapsed to one space.
    static func trimmed(_ value: String) -> String {
        var out = ""
        var pendingSpace = false
        for character in value {
            if character == " " || character == "\t" || character == "\n" || character == "\r" || character == "\r\n" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(character)
            }
        }
        return out
    }
}
