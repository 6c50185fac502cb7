import Foundation
import PluginAPI

/// Object operations: PUT, GET (whole, ranged, streamed), HEAD, DELETE (one or a batch) and
/// the retention of object versions.
extension S3Client {
    /// Stores `body` as `key` in one request (up to 5 GiB on AWS; see `upload` for larger).
    /// With `options.retention` the new version is locked; S3 then requires an integrity
    /// header, so one is always sent (SHA-256 unless MD5 is asked for).
    func putObject(bucket: String, key: String, body: RequestBody, options: PutOptions = PutOptions()) throws -> PutResult {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "PutObject", method: "PUT", bucket: bucket, key: key)
        call.body = body
        call.headers = try objectHeaders(options)
        (call.integrity, call.integrityRequired) = integrity(for: options)
        let response = try send(call)
        return PutResult(etag: Self.unquoted(response.header("etag") ?? ""), versionId: response.header("x-amz-version-id"))
    }

    func putObject(bucket: String, key: String, bytes: [UInt8], options: PutOptions = PutOptions()) throws -> PutResult {
        try putObject(bucket: bucket, key: key, body: .bytes(bytes), options: options)
    }

    /// Reads an object, or the bytes `range` of it, into memory.
    func getObject(bucket: String, key: String, range: Range<UInt64>? = nil, versionId: String? = nil) throws -> ObjectData {
        var bytes = Data()
        if let range { bytes.reserveCapacity(Int(clamping: min(range.count, 64 << 20))) }
        let info = try getObject(bucket: bucket, key: key, range: range, versionId: versionId) { bytes.append(contentsOf: $0) }
        return ObjectData(bytes: bytes, info: info)
    }

    /// Streams an object (or the bytes `range` of it) to `sink` as it arrives, and returns its
    /// metadata. A transfer broken part way is resumed where `sink` stopped (a ranged GET with
    /// `If-Match` on the first reply's ETag), so `sink` sees every byte exactly once, in order.
    func getObject(bucket: String, key: String, range: Range<UInt64>? = nil, versionId: String? = nil,
                   sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> ObjectInfo {
        try Self.validate(bucket: bucket, key: key)
        if let range, range.isEmpty {
            throw S3Error.local("GetObject s3://\(bucket)/\(key): the range \(range) is empty; ask for at least one byte", code: "InvalidArgument")
        }
        var call = Call(operation: "GetObject", method: "GET", bucket: bucket, key: key, versionId: versionId)
        if let versionId { call.query.append(("versionId", versionId)) }
        if let range { call.headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        let progress = DownloadProgress()
        let response = try send(call, sink: { bytes, headers in
            if progress.etag == nil { progress.etag = headers.first { $0.name == "etag" }?.value }
            progress.delivered += UInt64(bytes.count)
            try sink(bytes)
        }, beforeRetry: { call in
            guard progress.delivered > 0 else { return }
            let start = (range?.lowerBound ?? 0) + progress.delivered
            call.headers.removeAll { $0.name == "Range" || $0.name == "If-Match" }
            call.headers.append(("Range", "bytes=\(start)-" + (range.map { String($0.upperBound - 1) } ?? "")))
            if let etag = progress.etag { call.headers.append(("If-Match", etag)) }
        })
        return Self.objectInfo(response)
    }

    /// The metadata of an object (or of one version), without its body.
    func headObject(bucket: String, key: String, versionId: String? = nil) throws -> ObjectInfo {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "HeadObject", method: "HEAD", bucket: bucket, key: key, versionId: versionId)
        if let versionId { call.query.append(("versionId", versionId)) }
        return Self.objectInfo(try send(call))
    }

    /// Deletes an object. Without `versionId` on a versioned bucket this only adds a delete
    /// marker and frees nothing; with it, that version is removed, which Object Lock refuses
    /// (AccessDenied) while the version is locked, unless `bypassGovernance` is set and the
    /// lock is GOVERNANCE.
    @discardableResult
    func deleteObject(bucket: String, key: String, versionId: String? = nil, bypassGovernance: Bool = false) throws -> DeleteResult {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "DeleteObject", method: "DELETE", bucket: bucket, key: key, versionId: versionId)
        if let versionId { call.query.append(("versionId", versionId)) }
        if bypassGovernance { call.headers.append(("x-amz-bypass-governance-retention", "true")) }
        let response = try send(call)
        return DeleteResult(versionId: response.header("x-amz-version-id"), isDeleteMarker: response.header("x-amz-delete-marker") == "true")
    }

    /// Deletes many objects or versions, 1000 to a request. Objects the server refuses (a
    /// locked version answers AccessDenied) are listed in `failed`; the call itself throws
    /// only when a whole request fails.
    func deleteObjects(bucket: String, _ targets: [DeleteTarget], bypassGovernance: Bool = false) throws -> BatchDeleteResult {
        try Self.validate(bucket: bucket)
        var result = BatchDeleteResult(deleted: [], failed: [])
        for start in stride(from: 0, to: targets.count, by: 1000) {
            let batch = Array(targets[start..<min(start + 1000, targets.count)])
            var xml = XMLBuilder()
            xml.open("Delete", namespace: XMLBuilder.s3Namespace)
            xml.leaf("Quiet", "true")
            for target in batch {
                try Self.validate(bucket: bucket, key: target.key)
                xml.open("Object")
                xml.leaf("Key", target.key)
                if let versionId = target.versionId { xml.leaf("VersionId", versionId) }
                xml.close("Object")
            }
            xml.close("Delete")
            var call = Call(operation: "DeleteObjects", method: "POST", bucket: bucket)
            call.query = [("delete", "")]
            call.headers = [("Content-Type", "application/xml")]
            if bypassGovernance { call.headers.append(("x-amz-bypass-governance-retention", "true")) }
            call.body = .bytes(xml.bytes)
            call.integrity = .md5
            call.integrityRequired = true
            let root = try parseReply(try send(call), root: "DeleteResult", call)
            var refused = Set<DeleteTarget>()
            for error in root.children("Error") {
                let target = DeleteTarget(key: error.value("Key") ?? "", versionId: error.value("VersionId").flatMap { $0.isEmpty ? nil : $0 })
                refused.insert(target)
                result.failed.append((target, error.value("Code") ?? "InternalError", error.value("Message") ?? ""))
            }
            result.deleted += batch.filter { !refused.contains($0) }
        }
        return result
    }

    /// Sets (or extends) the retention of one object version. COMPLIANCE can only be
    /// extended; shortening GOVERNANCE needs `bypassGovernance`.
    func putObjectRetention(bucket: String, key: String, versionId: String?, retention: ObjectRetention,
                            bypassGovernance: Bool = false) throws {
        try Self.validate(bucket: bucket, key: key)
        var xml = XMLBuilder()
        xml.open("Retention", namespace: XMLBuilder.s3Namespace)
        xml.leaf("Mode", retention.mode.rawValue)
        xml.leaf("RetainUntilDate", ISOTime.string(retention.retainUntil))
        xml.close("Retention")
        var call = Call(operation: "PutObjectRetention", method: "PUT", bucket: bucket, key: key, versionId: versionId)
        call.query = [("retention", "")] + (versionId.map { [("versionId", $0)] } ?? [])
        call.headers = [("Content-Type", "application/xml")]
        if bypassGovernance { call.headers.append(("x-amz-bypass-governance-retention", "true")) }
        call.body = .bytes(xml.bytes)
        call.integrity = .md5
        call.integrityRequired = true
        _ = try send(call)
    }

    /// The retention of one object version, or nil when it has none.
    func getObjectRetention(bucket: String, key: String, versionId: String? = nil) throws -> ObjectRetention? {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "GetObjectRetention", method: "GET", bucket: bucket, key: key, versionId: versionId)
        call.query = [("retention", "")] + (versionId.map { [("versionId", $0)] } ?? [])
        let response: HTTPResponse
        do {
            response = try send(call)
        } catch let error as S3Error where error.code == "NoSuchObjectLockConfiguration" {
            return nil
        }
        let root = try parseReply(response, root: "Retention", call)
        guard let modeText = root.value("Mode"), let untilText = root.value("RetainUntilDate") else { return nil }
        guard let mode = ObjectLockMode(rawValue: modeText), let until = ISOTime.date(untilText) else {
            throw invalidResponse("retention mode \(modeText.debugDescription) or date \(untilText.debugDescription) is not valid", call)
        }
        return ObjectRetention(mode: mode, retainUntil: until)
    }

    /// The headers a PUT or CreateMultipartUpload carries for `options`.
    func objectHeaders(_ options: PutOptions) throws -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let contentType = options.contentType { headers.append(("Content-Type", contentType)) }
        for (name, value) in options.metadata.sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }) else {
                throw S3Error.local("metadata name \(name.debugDescription) must be lower-case letters, digits, - and _", code: "InvalidArgument")
            }
            headers.append(("x-amz-meta-\(name)", value))
        }
        if let retention = options.retention {
            headers.append(("x-amz-object-lock-mode", retention.mode.rawValue))
            headers.append(("x-amz-object-lock-retain-until-date", ISOTime.string(retention.retainUntil)))
        }
        if let legalHold = options.legalHold { headers.append(("x-amz-object-lock-legal-hold", legalHold ? "ON" : "OFF")) }
        return headers
    }

    /// The integrity check of a body and whether it must be sent: lock parameters require one.
    func integrity(for options: PutOptions) -> (IntegrityCheck, Bool) {
        let wanted = options.integrity ?? configuration.integrity
        guard options.retention != nil || options.legalHold != nil else { return (wanted, options.integrity != nil) }
        return (wanted == .none ? .sha256 : wanted, true)
    }

    static func objectInfo(_ response: HTTPResponse) -> ObjectInfo {
        var size = UInt64(response.header("content-length") ?? "") ?? 0
        if let range = response.header("content-range"), let slash = range.lastIndex(of: "/"),
           let total = UInt64(range[range.index(after: slash)...]) {
            size = total
        }
        var retention: ObjectRetention?
        if let mode = response.header("x-amz-object-lock-mode").flatMap(ObjectLockMode.init(rawValue:)),
           let until = response.header("x-amz-object-lock-retain-until-date").flatMap(ISOTime.date) {
            retention = ObjectRetention(mode: mode, retainUntil: until)
        }
        var metadata: [String: String] = [:]
        for (name, value) in response.headers where name.hasPrefix("x-amz-meta-") {
            metadata[String(name.dropFirst("x-amz-meta-".count))] = value
        }
        return ObjectInfo(size: size, etag: unquoted(response.header("etag") ?? ""),
                          lastModified: response.header("last-modified").flatMap(HTTPDate.parse),
                          versionId: response.header("x-amz-version-id"), contentType: response.header("content-type"),
                          retention: retention, legalHold: response.header("x-amz-object-lock-legal-hold") == "ON",
                          metadata: metadata)
    }

    static func unquoted(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }

    /// Bucket names as AWS allows them; keys of 1–1024 bytes without control characters
    /// (XML 1.0 cannot carry those, so a listing could not return such a key).
    static func validate(bucket: String, key: String? = nil) throws {
        let bytes = Array(bucket.utf8)
        let allowed = bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
        guard (3...63).contains(bytes.count), allowed, let first = bytes.first, let last = bytes.last,
              first != 45 && first != 46, last != 45 && last != 46 else {
            throw S3Error.local("bucket name \(bucket.debugDescription) is not valid: use 3 to 63 lower-case letters, digits, "
                                + "dots and hyphens, starting and ending with a letter or digit", code: "InvalidBucketName")
        }
        guard let key else { return }
        guard (1...1024).contains(key.utf8.count), !key.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) else {
            throw S3Error.local("object key \(key.debugDescription) is not valid: use 1 to 1024 bytes without control characters",
                                code: "InvalidArgument")
        }
    }
}

/// How far a streamed GET got, for resuming it after a broken transfer.
private final class DownloadProgress {
    var delivered: UInt64 = 0
    var etag: String?
}
