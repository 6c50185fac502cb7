import Foundation

/// The two Object Lock retention modes. GOVERNANCE can be lifted by a caller allowed to send
/// `x-amz-bypass-governance-retention: true`; COMPLIANCE can be neither lifted nor shortened
/// by anyone until it expires, only extended.
enum ObjectLockMode: String, Sendable {
    case governance = "GOVERNANCE"
    case compliance = "COMPLIANCE"
}

/// The retention of one object version: no one may delete it before `retainUntil`.
struct ObjectRetention: Equatable, Sendable {
    var mode: ObjectLockMode
    var retainUntil: Date
}

/// A bucket's Object Lock setting, with the default retention new versions get, if any.
struct ObjectLockConfiguration: Equatable, Sendable {
    var enabled: Bool
    var defaultMode: ObjectLockMode?
    var defaultDays: Int?
    var defaultYears: Int?
}

/// How the body's integrity is proven to the server, which refuses a body that does not match.
/// S3 requires one of them on a PUT that carries Object Lock parameters.
enum IntegrityCheck: Sendable {
    case none
    /// `Content-MD5`, understood by every S3 server.
    case md5
    /// `x-amz-checksum-sha256`, free when the payload is signed (the same hash).
    case sha256
}

/// Optional parts of a PUT (or of the start of a multipart upload).
struct PutOptions: Sendable {
    var contentType: String?
    /// Stored as `x-amz-meta-NAME` headers; names must be lower case.
    var metadata: [String: String] = [:]
    /// Locks the new version; the bucket must have Object Lock enabled.
    var retention: ObjectRetention?
    var legalHold: Bool?
    /// nil: the client's default (`S3Configuration.integrity`), raised to SHA-256 when
    /// `retention` or `legalHold` is set and the default is `.none`.
    var integrity: IntegrityCheck?

    init(contentType: String? = nil, metadata: [String: String] = [:], retention: ObjectRetention? = nil,
         legalHold: Bool? = nil, integrity: IntegrityCheck? = nil) {
        self.contentType = contentType
        self.metadata = metadata
        self.retention = retention
        self.legalHold = legalHold
        self.integrity = integrity
    }
}

/// What a PUT (or a completed multipart upload) created.
struct PutResult: Sendable {
    /// The entity tag without quotes: the MD5 of a single-part body, something else for multipart.
    var etag: String
    /// The new version's id on a versioned bucket; nil otherwise.
    var versionId: String?
}

/// An object's metadata, from HEAD or with the body of a GET.
struct ObjectInfo: Sendable {
    var size: UInt64
    var etag: String
    var lastModified: Date?
    var versionId: String?
    var contentType: String?
    var retention: ObjectRetention?
    var legalHold: Bool
    var metadata: [String: String]
}

/// The body of a GET (all of it, or the range asked for) and the object's metadata.
struct ObjectData: Sendable {
    var bytes: Data
    var info: ObjectInfo
}

/// One object of a listing.
struct ListedObject: Equatable, Sendable {
    var key: String
    var size: UInt64
    var etag: String
    var lastModified: Date?
}

/// One page of ListObjectsV2. Pass `nextToken` back to get the next page.
struct ObjectPage: Sendable {
    var objects: [ListedObject]
    /// With a delimiter: the key prefixes up to the delimiter, each once.
    var commonPrefixes: [String]
    var nextToken: String?
}

/// One entry of ListObjectVersions: a version, or a delete marker (which has no size or ETag).
struct ObjectVersion: Equatable, Sendable {
    var key: String
    var versionId: String
    var isLatest: Bool
    var isDeleteMarker: Bool
    var size: UInt64
    var etag: String?
    var lastModified: Date?
}

/// One page of ListObjectVersions; pass `next` back to get the next page.
struct VersionPage: Sendable {
    var versions: [ObjectVersion]
    var next: (keyMarker: String, versionIdMarker: String?)?
}

/// What a DELETE did: on a versioned bucket, a DELETE without a version id only adds a
/// delete marker (the data stays); with a version id it removes that version.
struct DeleteResult: Sendable {
    var versionId: String?
    var isDeleteMarker: Bool
}

/// One object (version) to remove in a batch delete, and the outcome for it.
struct DeleteTarget: Hashable, Sendable {
    var key: String
    var versionId: String?
}

struct BatchDeleteResult: Sendable {
    var deleted: [DeleteTarget]
    /// The objects the server refused, with its error code for each (AccessDenied for a
    /// version still locked).
    var failed: [(target: DeleteTarget, code: String, message: String)]
}

/// A multipart upload in progress.
struct MultipartUpload: Sendable {
    var key: String
    var uploadId: String
    var initiated: Date?
    /// How each part proves its integrity, fixed when the upload starts (a SHA-256 upload
    /// declares `x-amz-checksum-algorithm` and lists each part's checksum at completion).
    var integrity: IntegrityCheck = .none
}

/// A part uploaded to a multipart upload, as the completion must list it.
struct UploadedPart: Sendable {
    var number: Int
    var etag: String
    var checksumSHA256: String?
}
