import Foundation
import PluginAPI

/// Multipart uploads: the four calls of the protocol, a listing of unfinished uploads, and
/// `upload`, which sends a large body in parts over parallel requests.
extension S3Client {
    /// S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10 000 of them.
    static let minimumPartSize = 5 << 20
    static let maximumParts = 10_000

    /// Starts a multipart upload; `options` apply to the object it will make (lock included).
    func createMultipartUpload(bucket: String, key: String, options: PutOptions = PutOptions()) throws -> MultipartUpload {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "CreateMultipartUpload", method: "POST", bucket: bucket, key: key)
        call.query = [("uploads", "")]
        call.headers = try objectHeaders(options)
        let integrity = self.integrity(for: options).0
        if integrity == .sha256 { call.headers.append(("x-amz-checksum-algorithm", "SHA256")) }
        let root = try parseReply(try send(call), root: "InitiateMultipartUploadResult", call)
        guard let uploadId = root.value("UploadId"), !uploadId.isEmpty else { throw invalidResponse("the reply names no UploadId", call) }
        return MultipartUpload(key: key, uploadId: uploadId, initiated: nil, integrity: integrity)
    }

    /// Uploads part `number` (1…10 000) of `upload`.
    func uploadPart(bucket: String, upload: MultipartUpload, number: Int, body: RequestBody) throws -> UploadedPart {
        try Self.validate(bucket: bucket, key: upload.key)
        guard (1...Self.maximumParts).contains(number) else {
            throw S3Error.local("UploadPart s3://\(bucket)/\(upload.key): part number \(number) is outside 1–\(Self.maximumParts)",
                                code: "InvalidArgument")
        }
        var call = Call(operation: "UploadPart", method: "PUT", bucket: bucket, key: upload.key)
        call.query = [("partNumber", String(number)), ("uploadId", upload.uploadId)]
        call.body = body
        call.integrity = upload.integrity
        call.integrityRequired = upload.integrity != .none
        let response = try send(call)
        guard let etag = response.header("etag"), !etag.isEmpty else {
            throw invalidResponse("the reply to part \(number) has no ETag", call, status: response.status)
        }
        return UploadedPart(number: number, etag: Self.unquoted(etag), checksumSHA256: response.header("x-amz-checksum-sha256"))
    }

    /// Joins the parts (in part-number order) into the object.
    func completeMultipartUpload(bucket: String, upload: MultipartUpload, parts: [UploadedPart]) throws -> PutResult {
        try Self.validate(bucket: bucket, key: upload.key)
        var xml = XMLBuilder()
        xml.open("CompleteMultipartUpload", namespace: XMLBuilder.s3Namespace)
        for part in parts.sorted(by: { $0.number < $1.number }) {
            xml.open("Part")
            xml.leaf("PartNumber", String(part.number))
            xml.leaf("ETag", "\"\(part.etag)\"")
            if upload.integrity == .sha256, let checksum = part.checksumSHA256 { xml.leaf("ChecksumSHA256", checksum) }
            xml.close("Part")
        }
        xml.close("CompleteMultipartUpload")
        var call = Call(operation: "CompleteMultipartUpload", method: "POST", bucket: bucket, key: upload.key)
        call.query = [("uploadId", upload.uploadId)]
        call.headers = [("Content-Type", "application/xml")]
        call.body = .bytes(xml.bytes)
        call.errorMayFollowSuccess = true
        let response = try send(call)
        // moto names the root CompleteMultipartUploadResponse.
        let root = try parseReply(response, root: "CompleteMultipartUploadResult", alternatives: ["CompleteMultipartUploadResponse"], call)
        return PutResult(etag: Self.unquoted(root.value("ETag") ?? response.header("etag") ?? ""),
                         versionId: response.header("x-amz-version-id"))
    }

    /// Abandons an upload and frees its parts.
    func abortMultipartUpload(bucket: String, key: String, uploadId: String) throws {
        try Self.validate(bucket: bucket, key: key)
        var call = Call(operation: "AbortMultipartUpload", method: "DELETE", bucket: bucket, key: key)
        call.query = [("uploadId", uploadId)]
        _ = try send(call)
    }

    /// The unfinished uploads under `prefix` (left by a crash, say), for aborting them.
    func listMultipartUploads(bucket: String, prefix: String = "") throws -> [MultipartUpload] {
        try Self.validate(bucket: bucket)
        var uploads: [MultipartUpload] = []
        var markers: (key: String, uploadId: String)?
        repeat {
            var call = Call(operation: "ListMultipartUploads", method: "GET", bucket: bucket)
            call.query = [("uploads", "")]
            if !prefix.isEmpty { call.query.append(("prefix", prefix)) }
            if let markers { call.query += [("key-marker", markers.key), ("upload-id-marker", markers.uploadId)] }
            let root = try parseReply(try send(call), root: "ListMultipartUploadsResult", call)
            uploads += root.children("Upload").compactMap { entry in
                guard let key = entry.value("Key"), let uploadId = entry.value("UploadId") else { return nil }
                return MultipartUpload(key: key, uploadId: uploadId, initiated: entry.value("Initiated").flatMap(ISOTime.date))
            }
            markers = nil
            if root.value("IsTruncated") == "true", let key = root.value("NextKeyMarker"), let id = root.value("NextUploadIdMarker"),
               !key.isEmpty || !id.isEmpty {
                markers = (key, id)
            }
        } while markers != nil
        return uploads
    }

    /// Stores `body` as `key`: in one PUT up to `partSize`, otherwise as a multipart upload
    /// whose parts go out `concurrency` at a time (default `maxConcurrentRequests`). The part
    /// size grows if 10 000 parts would not hold the body. A failed upload is aborted, so no
    /// parts are left behind.
    func upload(bucket: String, key: String, body: RequestBody, options: PutOptions = PutOptions(),
                partSize: Int = 16 << 20, concurrency: Int? = nil) throws -> PutResult {
        let length = body.length
        var partSize = UInt64(max(Self.minimumPartSize, partSize))
        guard length > partSize else { return try putObject(bucket: bucket, key: key, body: body, options: options) }
        let mebibyte: UInt64 = 1 << 20
        if (length + partSize - 1) / partSize > UInt64(Self.maximumParts) {
            partSize = ((length + UInt64(Self.maximumParts) - 1) / UInt64(Self.maximumParts) + mebibyte - 1) / mebibyte * mebibyte
        }
        let count = Int((length + partSize - 1) / partSize)
        let upload = try createMultipartUpload(bucket: bucket, key: key, options: options)
        do {
            let parts = try concurrently(count, limit: concurrency) { index in
                let offset = UInt64(index) * partSize
                let size = min(partSize, length - offset)
                return try self.uploadPart(bucket: bucket, upload: upload, number: index + 1, body: body.slice(offset: offset, length: size))
            }
            return try completeMultipartUpload(bucket: bucket, upload: upload, parts: parts)
        } catch {
            try? abortMultipartUpload(bucket: bucket, key: key, uploadId: upload.uploadId)
            throw error
        }
    }
}

extension RequestBody {
    /// `length` bytes from `offset` (within the body; callers keep to its bounds).
    func slice(offset: UInt64, length: UInt64) -> RequestBody {
        switch self {
        case .empty: return .empty
        case .bytes(let bytes):
            return .bytes(Array(bytes[Int(offset)..<Int(offset + length)]))
        case .data(let data):
            return .data(data.subdata(in: (data.startIndex + Int(offset))..<(data.startIndex + Int(offset + length))))
        case .file(let path, let start, _):
            return .file(path: path, offset: start + offset, length: length)
        }
    }
}
