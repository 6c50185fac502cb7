import Foundation

/// A client of one S3-compatible service (AWS, Ceph RGW, SeaweedFS, MinIO, moto …).
///
/// Every operation is a blocking call that returns the result or throws `S3Error`. Each
/// request is signed with SigV4, has a timeout, and is retried with jittered exponential
/// back-off when the failure is transient (HTTP 500/502/503/504, SlowDown, a refused, broken
/// or silent connection); other failures are thrown at once. The client is thread-safe and
/// keeps at most `configuration.maxConcurrentRequests` requests on the wire however many
/// threads call it; `concurrently` fans work out over threads within that bound.
///
/// Retried requests are safe to repeat, with two consequences worth knowing: a retried PUT
/// on a versioned bucket may leave an extra identical version, and a retried
/// CreateMultipartUpload may leave an unused upload behind (`listMultipartUploads` and
/// `abortMultipartUpload` clean those up).
///
/// The operations live in extensions by area: objects and version retention
/// (`S3Client+Objects`), listings (`+Listing`), buckets and their Object Lock setting
/// (`+Buckets`), multipart uploads (`+Multipart`).
///
///     var configuration = S3Configuration(endpoint: "https://s3.example.com",
///                                         credentials: S3Credentials(accessKeyID: key, secretAccessKey: secret))
///     configuration.caFile = "/etc/dpm/s3-ca.pem"
///     let client = try S3Client(configuration)
///     try client.createBucket("dpm-online", objectLockEnabled: true)
///     let lock = ObjectRetention(mode: .governance, retainUntil: Date().addingTimeInterval(30 * 86_400))
///     let put = try client.putObject(bucket: "dpm-online", key: "chunks/ab/abcd…", bytes: sealed,
///                                    options: PutOptions(retention: lock))
///     let piece = try client.getObject(bucket: "dpm-online", key: "chunks/ab/abcd…", range: 0..<4096)
///     let found = try client.concurrently(keys.count) { try client.headObject(bucket: "dpm-online", key: keys[$0]) }
///     do { try client.deleteObject(bucket: "dpm-online", key: k, versionId: put.versionId) }
///     catch let error as S3Error where error.isAccessDenied { /* still locked: keep it */ }
///
/// Errors are `S3Error`; `pluginError` turns one into the status the host expects.
final class S3Client {
    let configuration: S3Configuration
    let endpoint: S3Endpoint
    let signer: SigV4Signer
    private let transport: CurlTransport
    private let slots: DispatchSemaphore

    init(_ configuration: S3Configuration) throws {
        let credentials = configuration.credentials
        guard credentials.isAnonymous || !credentials.accessKeyID.isEmpty && !credentials.secretAccessKey.isEmpty else {
            throw S3Error.local("the access key ID and the secret key must both be given (or neither, for unsigned requests)",
                                code: "InvalidArgument")
        }
        guard !configuration.region.isEmpty, configuration.region.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }) else {
            throw S3Error.local("region \(configuration.region.debugDescription) is not a region name such as us-east-1", code: "InvalidArgument")
        }
        self.configuration = configuration
        endpoint = try S3Endpoint(configuration.endpoint)
        signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        var options = CurlTransport.Options()
        options.caFile = configuration.caFile
        options.connectTimeout = configuration.connectTimeout
        options.requestTimeout = configuration.requestTimeout
        options.stallTimeout = configuration.stallTimeout
        options.resolve = configuration.resolve
        options.idleHandles = max(4, configuration.maxConcurrentRequests)
        transport = try CurlTransport(options: options)
        slots = DispatchSemaphore(value: max(1, configuration.maxConcurrentRequests))
    }

    /// Runs `body(0..<count)` on up to `limit` threads (default: `maxConcurrentRequests`), for
    /// example one ranged GET or one part upload per index. See `RequestPool.map`.
    func concurrently<Result>(_ count: Int, limit: Int? = nil, _ body: @escaping (Int) throws -> Result) throws -> [Result] {
        try RequestPool.map(count, limit: limit ?? configuration.maxConcurrentRequests, body)
    }

    /// One S3 operation as the extensions describe it.
    struct Call {
        var operation: String
        var method: String
        var bucket: String?
        var key: String?
        /// For error messages; the caller also puts it in `query`.
        var versionId: String?
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body: RequestBody = .empty
        var integrity = IntegrityCheck.none
        /// The integrity header must be sent even when streaming signatures would cover the body.
        var integrityRequired = false
        /// CompleteMultipartUpload may answer 200 and put an `<Error>` in the body.
        var errorMayFollowSuccess = false
    }

    /// Sends `call`, retrying transient failures.
    /// - Parameters:
    ///   - sink: receives the body of a successful reply as it arrives (nil: collected in the reply).
    ///   - beforeRetry: adjusts the call before each retry (a GET resumes where its sink stopped).
    /// - Returns: the successful reply.
    func send(_ call: Call, sink: ResponseSink? = nil,
              beforeRetry: ((inout Call) -> Void)? = nil) throws -> HTTPResponse {
        var call = call
        var streamingChunk: Int?
        if case .streaming(let chunkSize) = configuration.payloadSigning, case .file = call.body,
           !configuration.credentials.isAnonymous {
            streamingChunk = chunkSize
            if !call.integrityRequired { call.integrity = .none }
        }
        let payload: PayloadDigests
        do {
            // The SHA-256 serves as the signed payload hash and as the sha256 integrity header.
            let needsSHA256 = call.integrity == .sha256 || (streamingChunk == nil && configuration.payloadSigning.signsBody)
            payload = try PayloadDigests(call.body, sha256: needsSHA256, md5: call.integrity == .md5)
        } catch var error as S3Error {
            error.fill(call, endpoint: endpoint.url)
            throw error
        }
        var attempt = 0
        while true {
            attempt += 1
            var request = httpRequest(for: call)
            switch call.integrity {
            case .none: break
            case .md5: if let md5 = payload.md5Base64 { request.setHeader("Content-MD5", md5) }
            case .sha256:
                // AWS SDKs name the algorithm too; moto insists on it beside Object Lock headers.
                if let sha256 = payload.sha256 {
                    request.setHeader("x-amz-sdk-checksum-algorithm", "SHA256")
                    request.setHeader("x-amz-checksum-sha256", Digest.base64(sha256))
                }
            }
            var bodyLength = call.body.length
            let payloadHash: String
            if let chunkSize = streamingChunk {
                request.setHeader("Content-Encoding", "aws-chunked")
                request.setHeader("x-amz-decoded-content-length", String(call.body.length))
                payloadHash = SigV4Signer.streamingPayload
                bodyLength = AWSChunkedReader.encodedLength(decodedLength: call.body.length, chunkSize: chunkSize)
            } else if configuration.payloadSigning.signsBody || call.body.length == 0, let sha256 = payload.sha256 {
                payloadHash = Digest.hex(sha256)
            } else {
                payloadHash = SigV4Signer.unsignedPayload
            }
            let anonymous = configuration.credentials.isAnonymous
            if anonymous { request.setHeader("x-amz-content-sha256", payloadHash) }
            let signature = anonymous ? nil : signer.sign(&request, payloadHash: payloadHash, at: Date())

            var failure: S3Error
            do {
                var reader: BodyReader? = nil
                if ["PUT", "POST"].contains(call.method) {
                    let source = try call.body.makeReader()
                    if let chunkSize = streamingChunk, let signature {
                        reader = AWSChunkedReader(source: source, decodedLength: call.body.length, chunkSize: chunkSize,
                                                  signer: signer, seed: signature)
                    } else {
                        reader = source
                    }
                }
                slots.wait()
                defer { slots.signal() }
                let response = try transport.send(request, body: reader, bodyLength: bodyLength, sink: sink)
                if response.isSuccess {
                    guard call.errorMayFollowSuccess, let embedded = Self.embeddedError(response) else { return response }
                    failure = embedded
                } else {
                    failure = Self.serverError(response, call: call)
                }
            } catch let error as S3Error where error.origin == .transport {
                failure = error
            } catch var error as S3Error {
                error.fill(call, endpoint: endpoint.url)
                throw error
            }
            failure.fill(call, endpoint: endpoint.url)
            failure.attempts = attempt
            failure.unsigned = anonymous
            guard failure.isRetryable, attempt < configuration.retry.maxAttempts else { throw failure }
            Thread.sleep(forTimeInterval: configuration.retry.delay(afterAttempt: attempt))
            beforeRetry?(&call)
        }
    }

    /// The request for `call` under the configured addressing style.
    func httpRequest(for call: Call) -> HTTPRequest {
        var host = endpoint.host
        var path = "/"
        switch configuration.addressing {
        case .path:
            if let bucket = call.bucket { path += URIEncoding.encode(bucket) + (call.key.map { "/" + URIEncoding.encodePath($0) } ?? "") }
        case .virtualHosted:
            if let bucket = call.bucket { host = "\(bucket).\(host)" }
            path += call.key.map(URIEncoding.encodePath) ?? ""
        }
        return HTTPRequest(method: call.method, scheme: endpoint.scheme, host: host, port: endpoint.port, path: path,
                           query: call.query, headers: call.headers, body: call.body)
    }

    /// The error a non-2xx reply stands for: S3's XML `<Error>` when there is one, otherwise
    /// the code S3 would have sent for the status (a HEAD reply has no body).
    static func serverError(_ response: HTTPResponse, call: Call) -> S3Error {
        var error = S3Error(origin: .server, code: "", httpStatus: response.status)
        error.requestId = response.header("x-amz-request-id")
        if let root = try? S3XMLParser.parse(response.body), root.name == "Error", let code = root.value("Code"), !code.isEmpty {
            error.code = code
            error.serverMessage = root.value("Message")
            error.requestId = root.value("RequestId") ?? error.requestId
            return error
        }
        switch response.status {
        case 301: error.code = "PermanentRedirect"
        case 400: error.code = "BadRequest"
        case 403: error.code = "AccessDenied"
        case 404: error.code = call.key == nil ? "NoSuchBucket" : call.versionId == nil ? "NoSuchKey" : "NoSuchVersion"
        case 405: error.code = "MethodNotAllowed"
        case 409: error.code = "Conflict"
        case 412: error.code = "PreconditionFailed"
        case 416: error.code = "InvalidRange"
        case 500: error.code = "InternalError"
        case 501: error.code = "NotImplemented"
        case 503: error.code = "ServiceUnavailable"
        default: error.code = "HTTP\(response.status)"
        }
        if !response.body.isEmpty && response.body.count < 512 {
            error.serverMessage = String(decoding: response.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return error
    }

    private static func embeddedError(_ response: HTTPResponse) -> S3Error? {
        guard let root = try? S3XMLParser.parse(response.body), root.name == "Error" else { return nil }
        var error = S3Error(origin: .server, code: root.value("Code") ?? "InternalError", httpStatus: response.status)
        error.serverMessage = root.value("Message")
        error.requestId = root.value("RequestId")
        return error
    }

    /// A reply that is not what S3 sends, described by `detail`.
    func invalidResponse(_ detail: String, _ call: Call, status: Int = 200) -> S3Error {
        var error = S3Error(origin: .server, code: "InvalidResponse", httpStatus: status)
        error.detail = detail
        error.fill(call, endpoint: endpoint.url)
        return error
    }

    /// Parses an XML reply whose root must be `root` (or one of `alternatives`).
    func parseReply(_ response: HTTPResponse, root name: String, alternatives: [String] = [], _ call: Call) throws -> XMLElement {
        do {
            let root = try S3XMLParser.parse(response.body)
            guard root.name == name || alternatives.contains(root.name) else {
                throw S3XMLParser.Failure(offset: 0, reason: "the root element is <\(root.name)>, not <\(name)>")
            }
            return root
        } catch {
            throw invalidResponse("\(error)", call, status: response.status)
        }
    }
}

extension S3Configuration.PayloadSigning {
    var signsBody: Bool {
        if case .unsigned = self { return false }
        return true
    }
}

/// The hashes of a body that signing and the integrity headers need, from one pass over it.
private struct PayloadDigests {
    var sha256: [UInt8]?
    var md5Base64: String?

    init(_ body: RequestBody, sha256 wantsSHA256: Bool, md5 wantsMD5: Bool) throws {
        if body.length == 0 {
            sha256 = Digest.sha256([UInt8]())
            if wantsMD5 { md5Base64 = Digest.base64(Digest.md5([UInt8]())) }
            return
        }
        switch body {
        case .bytes, .data:
            try body.forEachPiece { piece in
                if wantsSHA256 { sha256 = Digest.sha256(piece) }
                if wantsMD5 { md5Base64 = Digest.base64(Digest.md5(piece)) }
            }
        case .empty, .file:
            guard wantsSHA256 || wantsMD5 else { return }
            let shaStream = wantsSHA256 ? try StreamingDigest(.sha256) : nil
            let md5Stream = wantsMD5 ? try StreamingDigest(.md5) : nil
            try body.forEachPiece { piece in
                shaStream?.update(piece)
                md5Stream?.update(piece)
            }
            sha256 = shaStream?.finish()
            md5Base64 = md5Stream.map { Digest.base64($0.finish()) }
        }
    }
}

extension S3Error {
    /// Adds what the call was about, keeping anything already known.
    mutating func fill(_ call: S3Client.Call, endpoint: String) {
        operation = operation ?? call.operation
        bucket = bucket ?? call.bucket
        key = key ?? call.key
        versionId = versionId ?? call.versionId
        self.endpoint = self.endpoint ?? endpoint
    }
}
