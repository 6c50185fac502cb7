import PluginAPI

/// Every failure of the S3 client: an error reply from the server, a transport failure before
/// a complete reply, or a problem found locally.
///
/// `code` is S3's own error code when the server sent one (`AccessDenied`, `NoSuchBucket`,
/// `SignatureDoesNotMatch`, `InvalidAccessKeyId`, `ObjectLockConfigurationNotFoundError` …).
/// A reply without a body (HEAD) gets the code S3 would have sent for its status. Failures
/// without a reply use the client's codes `ConnectionFailed`, `Timeout`, `ConnectionLost`,
/// `NameResolutionFailed`, `TLSVerificationFailed`, `InvalidResponse`; local problems use
/// `InvalidArgument`, `LocalFileError`, `InternalError`. `description` names the operation,
/// the object, the endpoint, what happened and the fix.
struct S3Error: Error, CustomStringConvertible {
    enum Origin: Sendable { case server, transport, local }

    var origin: Origin
    var code: String
    /// The HTTP status of the reply; nil when none came.
    var httpStatus: Int?
    /// The S3 operation (`PutObject`, `DeleteObject` …).
    var operation: String?
    var bucket: String?
    var key: String?
    var versionId: String?
    /// The endpoint URL the request went to.
    var endpoint: String?
    /// The `<Message>` of the server's error body.
    var serverMessage: String?
    var requestId: String?
    /// How many times the request was sent before giving up.
    var attempts = 1
    /// The lower layer's own words, for example libcurl's error text.
    var detail: String?
    /// A message that replaces the generic one (local errors).
    var localMessage: String?
    /// The request went unsigned (the client has no credentials).
    var unsigned = false

    static func local(_ message: String, code: String) -> S3Error {
        S3Error(origin: .local, code: code, localMessage: message)
    }

    /// Whether sending the same request again may succeed: throttling, server faults and a
    /// broken or silent connection.
    var isRetryable: Bool {
        switch origin {
        case .local: return false
        case .transport: return ["ConnectionFailed", "Timeout", "ConnectionLost", "NameResolutionFailed"].contains(code)
        case .server:
            if let httpStatus, [500, 502, 503, 504].contains(httpStatus) { return true }
            return ["SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling", "ThrottlingException"].contains(code)
        }
    }

    /// AccessDenied: how S3 refuses to delete a locked version or shorten its lock, with the
    /// same code as a missing permission (so GC reads it as "still locked" on a version delete).
    var isAccessDenied: Bool { code == "AccessDenied" }

    var objectName: String? {
        guard let bucket else { return nil }
        return "s3://\(bucket)" + (key.map { "/\($0)" } ?? "") + (versionId.map { " (version \($0))" } ?? "")
    }

    var description: String {
        if let localMessage {
            return ([operation, objectName].compactMap { $0 }.joined(separator: " ") + (operation == nil && objectName == nil ? "" : ": "))
                + localMessage
        }
        var text = [operation, objectName].compactMap { $0 }.joined(separator: " ")
        if let endpoint { text += (text.isEmpty ? "" : " ") + "at \(endpoint)" }
        text += ": \(code)"
        if let httpStatus { text += " (HTTP \(httpStatus))" }
        if let serverMessage, !serverMessage.isEmpty {
            text += ": " + (serverMessage.hasSuffix(".") ? String(serverMessage.dropLast()) : serverMessage)
        }
        if let detail, !detail.isEmpty { text += ": \(detail)" }
        if attempts > 1 { text += " (after \(attempts) attempts)" }
        return text + "; " + fix
    }

    /// What to do about it, in words an operator can act on.
    var fix: String {
        let bucketName = bucket.map { "bucket \($0)" } ?? "the bucket"
        let endpointName = endpoint ?? "the endpoint"
        switch code {
        case "AccessDenied":
            if unsigned {
                return "the request was unsigned because no credentials are configured, and the server requires signed "
                    + "requests; configure the access key ID and secret key"
            }
            if operation == "DeleteObject" && versionId != nil || operation == "PutObjectRetention" {
                return "the version is still locked by Object Lock (it cannot be deleted or its lock shortened before its "
                    + "retain-until date), or the credentials lack that permission"
            }
            return "the server refused these credentials for this operation (an unsigned request or a missing permission); "
                + "give the identity the permission on the server or configure credentials that have it"
        case "InvalidAccessKeyId":
            return "the server knows no such access key; check the access key ID configured for the online tier"
        case "SignatureDoesNotMatch":
            return "the secret key does not belong to the access key; check the secret key configured for the online tier"
        case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
            return "the region or addressing does not match \(bucketName); configure the region the bucket lives in "
                + "(or path-style addressing)"
        case "RequestTimeTooSkewed":
            return "this machine's clock differs from the server's by more than 15 minutes; correct the clock (NTP)"
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            return "the session token is no longer valid; configure fresh credentials"
        case "NoSuchBucket":
            return "\(bucketName) does not exist at \(endpointName); create it (with Object Lock if locks are wanted) or correct the bucket name"
        case "NoSuchKey":
            return "the object does not exist; it may have been deleted or never uploaded"
        case "NoSuchVersion":
            return "that version does not exist; list the object's versions to find the right one"
        case "NoSuchUpload":
            return "the multipart upload no longer exists (it was completed or aborted); upload the object again"
        case "ObjectLockConfigurationNotFoundError":
            return "\(bucketName) was created without Object Lock, and Object Lock can only be enabled when a bucket is created; "
                + "create a new bucket with Object Lock enabled, or turn locks off for this tier"
        case "NoSuchObjectLockConfiguration":
            return "the object version has no retention set"
        case "InvalidRetentionPeriod":
            return "the retain-until date must lie in the future, and a COMPLIANCE date can only be extended"
        case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest", "InvalidChecksum":
            return "the data did not match its checksum when it arrived; send it again, and if that keeps happening something "
                + "between this machine and the server corrupts data"
        case "EntityTooSmall":
            return "every part of a multipart upload except the last must be at least 5 MiB; use a larger part size"
        case "EntityTooLarge":
            return "the object is too large for one request; upload it in parts"
        case "InvalidPart", "InvalidPartOrder":
            return "the completion listed a part that was not uploaded as listed; upload the object again"
        case "BucketAlreadyExists":
            return "another account owns a bucket of that name; choose another bucket name"
        case "BucketAlreadyOwnedByYou":
            return "the bucket already exists and belongs to these credentials"
        case "BucketNotEmpty":
            return "delete every object version in \(bucketName) first"
        case "InvalidBucketName":
            return "bucket names are 3 to 63 characters of lower-case letters, digits, dots and hyphens"
        case "PreconditionFailed":
            return "the object changed while it was being read; read it again"
        case "InvalidRange":
            return "the range starts beyond the end of the object"
        case "NotImplemented", "MethodNotAllowed":
            return "this S3 server does not support the operation; use a server that does"
        case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling", "ThrottlingException":
            return "the server is overloaded or failing; try again later"
        case "ConnectionFailed":
            return "nothing accepts connections at \(endpointName); check the endpoint URL and that the server is running"
        case "NameResolutionFailed":
            return "the host name of \(endpointName) does not resolve; check the endpoint URL and DNS"
        case "Timeout":
            return "no complete reply arrived in time; check the network and the server, or raise the request timeout"
        case "ConnectionLost":
            return "the connection broke during the request; check the network and the server"
        case "TLSVerificationFailed":
            return "the server's certificate is not trusted or does not name this host; configure the CA certificate file "
                + "that signed it, and use the host name the certificate was issued for"
        case "TLSCAFileUnreadable":
            return "the configured CA certificate file cannot be read; give the path of a PEM file"
        case "InvalidResponse":
            return "the server's reply is not what S3 sends; check that the endpoint is an S3 server"
        default:
            if let httpStatus, httpStatus >= 500 { return "the server failed; try again later" }
            return "see the server's message"
        }
    }

    /// The same failure as a plugin status for the host: retryable failures are transient,
    /// missing things are not-found, refused credentials and settings are invalid.
    var pluginError: PluginError {
        let status: PluginError.Code
        switch code {
        case _ where isRetryable: status = .transient
        case "NoSuchBucket", "NoSuchKey", "NoSuchVersion", "NoSuchUpload", "NoSuchObjectLockConfiguration",
             "ObjectLockConfigurationNotFoundError":
            status = .notFound
        case "NotImplemented", "MethodNotAllowed": status = .unsupported
        case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest", "InvalidChecksum": status = .corrupt
        case "LocalFileError": status = .io
        case "InternalError" where origin == .local: status = .internalError
        default: status = origin == .transport ? .io : .invalid
        }
        return PluginError(status, description)
    }
}
