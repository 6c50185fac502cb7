import Foundation

/// Where one S3 service is and how to talk to it.
struct S3Configuration: Sendable {
    /// How a bucket is named in a request.
    enum Addressing: Sendable {
        /// `https://host/bucket/key`: works with every server and any bucket name.
        case path
        /// `https://bucket.host/key`: AWS's default; needs DNS (or `resolve`) for `bucket.host`
        /// and, over HTTPS, a certificate covering it (so no dots in bucket names).
        case virtualHosted
    }

    /// How the body of a PUT is covered by the signature.
    enum PayloadSigning: Sendable {
        /// `x-amz-content-sha256` is the body's SHA-256, computed before sending.
        case signed
        /// `UNSIGNED-PAYLOAD`: the body is not signed (TLS protects it; the integrity check still applies).
        case unsigned
        /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` for file bodies: each chunk of `chunkSize`
        /// bytes is signed as it is read, so a file is read once. Memory bodies stay `signed`.
        case streaming(chunkSize: Int)
    }

    /// `http://HOST[:PORT]` or `https://HOST[:PORT]`, without a path.
    var endpoint: String
    var region = "us-east-1"
    var credentials: S3Credentials
    var addressing = Addressing.path
    /// A PEM file of the CA certificates to trust for HTTPS instead of the system's.
    var caFile: String?
    var connectTimeout: TimeInterval = 10
    /// The most one attempt of one request may take.
    var requestTimeout: TimeInterval = 300
    /// An attempt moving less than a byte a second for this long is abandoned (and retried).
    var stallTimeout: TimeInterval = 60
    var retry = RetryPolicy()
    /// The most requests this client has on the wire at once, however many threads call it.
    var maxConcurrentRequests = 8
    var payloadSigning = PayloadSigning.signed
    /// The integrity header of PUT and UploadPart bodies unless `PutOptions` says otherwise.
    var integrity = IntegrityCheck.sha256
    /// libcurl `--resolve` entries (`HOST:PORT:ADDRESS`), e.g. for virtual-hosted buckets on a private endpoint.
    var resolve: [String] = []

    init(endpoint: String, credentials: S3Credentials, region: String = "us-east-1", addressing: Addressing = .path) {
        self.endpoint = endpoint
        self.credentials = credentials
        self.region = region
        self.addressing = addressing
    }
}

/// The parsed endpoint URL.
struct S3Endpoint: Sendable {
    var scheme: String
    var host: String
    var port: Int

    init(_ text: String) throws {
        guard let components = URLComponents(string: text.trimmingCharacters(in: .whitespaces)),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty else {
            throw S3Error.local("endpoint \(text.debugDescription) is not an http:// or https:// URL with a host; "
                                + "give it as https://HOST[:PORT]", code: "InvalidArgument")
        }
        guard components.path.isEmpty || components.path == "/", components.query == nil, components.user == nil else {
            throw S3Error.local("endpoint \(text) has a path, query or user name; give only https://HOST[:PORT]", code: "InvalidArgument")
        }
        self.scheme = scheme
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host.lowercased()
        self.port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw S3Error.local("endpoint \(text) has port \(port), outside 1–65535", code: "InvalidArgument")
        }
    }

    var url: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(name)" + (port == (scheme == "https" ? 443 : 80) ? "" : ":\(port)")
    }
}

/// Retries with "full jitter" exponential back-off: the wait before attempt n + 1 is drawn
/// uniformly from [0, min(maxDelay, baseDelay · 2^(n-1))], which spreads the retries of many
/// clients that failed together. Only `S3Error.isRetryable` failures are retried.
struct RetryPolicy: Sendable {
    /// Attempts in all, the first included; 1 turns retries off.
    var maxAttempts = 5
    var baseDelay: TimeInterval = 0.2
    var maxDelay: TimeInterval = 10

    func delay(afterAttempt attempt: Int) -> TimeInterval {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(max(0, attempt - 1))))
        guard ceiling > 0 else { return 0 }
        return Double.random(in: 0...ceiling)
    }
}
