import Foundation
import PluginAPI

/// Listings: ListObjectsV2 and ListObjectVersions, by page or whole.
extension S3Client {
    /// One page (at most `maxKeys`, and at most 1000) of the objects whose keys start with
    /// `prefix`, in key order. With `delimiter`, keys that contain it after the prefix are
    /// rolled up into `commonPrefixes`.
    func listObjects(bucket: String, prefix: String = "", delimiter: String? = nil, startAfter: String? = nil,
                     continuationToken: String? = nil, maxKeys: Int = 1000) throws -> ObjectPage {
        try Self.validate(bucket: bucket)
        var call = Call(operation: "ListObjectsV2", method: "GET", bucket: bucket)
        call.query = [("list-type", "2"), ("max-keys", String(max(1, min(1000, maxKeys))))]
        if !prefix.isEmpty { call.query.append(("prefix", prefix)) }
        if let delimiter { call.query.append(("delimiter", delimiter)) }
        if let startAfter { call.query.append(("start-after", startAfter)) }
        if let continuationToken { call.query.append(("continuation-token", continuationToken)) }
        let root = try parseReply(try send(call), root: "ListBucketResult", call)
        let objects = root.children("Contents").map { entry in
            ListedObject(key: entry.value("Key") ?? "", size: UInt64(entry.value("Size") ?? "") ?? 0,
                         etag: Self.unquoted(entry.value("ETag") ?? ""),
                         lastModified: entry.value("LastModified").flatMap(ISOTime.date))
        }
        let truncated = root.value("IsTruncated") == "true"
        let token = root.value("NextContinuationToken").flatMap { $0.isEmpty ? nil : $0 }
        if truncated && token == nil { throw invalidResponse("the listing is truncated but names no continuation token", call) }
        return ObjectPage(objects: objects, commonPrefixes: root.children("CommonPrefixes").compactMap { $0.value("Prefix") },
                          nextToken: truncated ? token : nil)
    }

    /// Every object under `prefix`, page after page.
    func listAllObjects(bucket: String, prefix: String = "") throws -> [ListedObject] {
        var all: [ListedObject] = []
        try forEachObjectPage(bucket: bucket, prefix: prefix) { all += $0.objects }
        return all
    }

    /// Calls `body` with each page under `prefix`, so a huge bucket need not fit in memory.
    func forEachObjectPage(bucket: String, prefix: String = "", delimiter: String? = nil,
                           _ body: (ObjectPage) throws -> Void) throws {
        var token: String?
        repeat {
            let page = try listObjects(bucket: bucket, prefix: prefix, delimiter: delimiter, continuationToken: token)
            try body(page)
            token = page.nextToken
        } while token != nil
    }

    /// One page of the versions and delete markers under `prefix`, in key order and, within
    /// a key, newest first.
    func listObjectVersions(bucket: String, prefix: String = "", keyMarker: String? = nil, versionIdMarker: String? = nil,
                            maxKeys: Int = 1000) throws -> VersionPage {
        try Self.validate(bucket: bucket)
        var call = Call(operation: "ListObjectVersions", method: "GET", bucket: bucket)
        call.query = [("versions", ""), ("max-keys", String(max(1, min(1000, maxKeys))))]
        if !prefix.isEmpty { call.query.append(("prefix", prefix)) }
        if let keyMarker { call.query.append(("key-marker", keyMarker)) }
        if let versionIdMarker { call.query.append(("version-id-marker", versionIdMarker)) }
        let root = try parseReply(try send(call), root: "ListVersionsResult", call)
        let versions = root.children.compactMap { entry -> ObjectVersion? in
            guard entry.name == "Version" || entry.name == "DeleteMarker" else { return nil }
            return ObjectVersion(key: entry.value("Key") ?? "", versionId: entry.value("VersionId") ?? "null",
                                 isLatest: entry.value("IsLatest") == "true", isDeleteMarker: entry.name == "DeleteMarker",
                                 size: UInt64(entry.value("Size") ?? "") ?? 0,
                                 etag: entry.value("ETag").map(Self.unquoted),
                                 lastModified: entry.value("LastModified").flatMap(ISOTime.date))
        }
        var next: (keyMarker: String, versionIdMarker: String?)?
        if root.value("IsTruncated") == "true" {
            guard let key = root.value("NextKeyMarker"), !key.isEmpty else {
                throw invalidResponse("the version listing is truncated but names no next key marker", call)
            }
            next = (key, root.value("NextVersionIdMarker").flatMap { $0.isEmpty ? nil : $0 })
        }
        return VersionPage(versions: versions, next: next)
    }

    /// Every version and delete marker under `prefix`.
    func listAllObjectVersions(bucket: String, prefix: String = "") throws -> [ObjectVersion] {
        var all: [ObjectVersion] = []
        var marker: (keyMarker: String, versionIdMarker: String?)?
        repeat {
            let page = try listObjectVersions(bucket: bucket, prefix: prefix, keyMarker: marker?.keyMarker,
                                              versionIdMarker: marker?.versionIdMarker)
            all += page.versions
            marker = page.next
        } while marker != nil
        return all
    }
}
