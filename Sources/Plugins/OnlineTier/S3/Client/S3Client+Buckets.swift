/// Bucket operations: create (with Object Lock), check, delete, and the Object Lock setting.
extension S3Client {
    /// Creates a bucket in the configured region. Object Lock can only be switched on here,
    /// at creation, and it turns versioning on for good.
    func createBucket(_ bucket: String, objectLockEnabled: Bool = false) throws {
        try Self.validate(bucket: bucket)
        var call = Call(operation: "CreateBucket", method: "PUT", bucket: bucket)
        if objectLockEnabled { call.headers.append(("x-amz-bucket-object-lock-enabled", "true")) }
        if configuration.region != "us-east-1" {
            var xml = XMLBuilder()
            xml.open("CreateBucketConfiguration", namespace: XMLBuilder.s3Namespace)
            xml.leaf("LocationConstraint", configuration.region)
            xml.close("CreateBucketConfiguration")
            call.body = .bytes(xml.bytes)
            call.headers.append(("Content-Type", "application/xml"))
        }
        _ = try send(call)
    }

    /// Returns when the bucket exists and these credentials may use it; otherwise throws the
    /// error that says which (NoSuchBucket, AccessDenied …).
    func headBucket(_ bucket: String) throws {
        try Self.validate(bucket: bucket)
        _ = try send(Call(operation: "HeadBucket", method: "HEAD", bucket: bucket))
    }

    /// Deletes an empty bucket.
    func deleteBucket(_ bucket: String) throws {
        try Self.validate(bucket: bucket)
        _ = try send(Call(operation: "DeleteBucket", method: "DELETE", bucket: bucket))
    }

    /// The bucket's Object Lock setting. A bucket created without Object Lock answers
    /// `ObjectLockConfigurationNotFoundError`, which is thrown (its fix says what to do).
    func getObjectLockConfiguration(_ bucket: String) throws -> ObjectLockConfiguration {
        try Self.validate(bucket: bucket)
        var call = Call(operation: "GetObjectLockConfiguration", method: "GET", bucket: bucket)
        call.query = [("object-lock", "")]
        let root = try parseReply(try send(call), root: "ObjectLockConfiguration", call)
        let retention = root.child("Rule")?.child("DefaultRetention")
        return ObjectLockConfiguration(enabled: root.value("ObjectLockEnabled") == "Enabled",
                                       defaultMode: retention?.value("Mode").flatMap(ObjectLockMode.init(rawValue:)),
                                       defaultDays: retention?.value("Days").flatMap { Int($0) },
                                       defaultYears: retention?.value("Years").flatMap { Int($0) })
    }

    /// Whether versioning is on (`Enabled`), paused (`Suspended`) or was never set (nil).
    func getBucketVersioning(_ bucket: String) throws -> String? {
        try Self.validate(bucket: bucket)
        var call = Call(operation: "GetBucketVersioning", method: "GET", bucket: bucket)
        call.query = [("versioning", "")]
        let root = try parseReply(try send(call), root: "VersioningConfiguration", call)
        return root.value("Status").flatMap { $0.isEmpty ? nil : $0 }
    }
}
