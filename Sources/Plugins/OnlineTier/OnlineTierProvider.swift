import Foundation
import PluginAPI

/// The online tier (PRODUCT.md, "Azure online protection"): objects in an S3-compatible
/// bucket, kept up to 3360 days.
///
/// It is an object tier (ABI 1.1): the host decides what to upload, encrypts it and lays out
/// the keys (Host's `OnlineLayout`); this provider moves objects with the S3 client and maps
/// S3's answers onto dpm's statuses. A locked version refused for deletion (AccessDenied on a
/// version delete) is `locked`. Commands: `setup` (check and remember the bucket), `status`.
final class OnlineTierProvider: ObjectTierProvider {
    static let version = "0.2.0"
    /// The longest online retention DPM offers, and so the most this tier accepts.
    static let maxRetentionDays = 3360
    /// Objects larger than this go up in parts.
    static let multipartThreshold = 64 << 20

    let descriptor = ProviderDescriptor(
        id: "online-tier",
        displayName: "Online tier on S3-compatible object storage",
        version: OnlineTierProvider.version,
        kind: .tier,
        capabilities: [.longTermRetention],
        maxRetentionDays: OnlineTierProvider.maxRetentionDays,
        status: .ready("S3 objects with SigV4, Object Lock and multipart uploads")
    )

    private let lock = NSLock()
    private var cached: (OnlineSettings, S3Client)?

    /// The bucket's client, made once per process from the saved settings.
    func connection(_ call: HostCall) throws -> (OnlineSettings, S3Client) {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let settings = try OnlineSettings.load(call)
        let made = (settings, try settings.client())
        cached = made
        return made
    }

    /// Runs an S3 call, turning its error into the host's status.
    func s3<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as S3Error {
            throw error.pluginError
        }
    }

    // MARK: Objects

    func putObject(_ key: String, _ data: UnsafeRawBufferPointer, lock: ObjectLock?, call: HostCall) throws -> ObjectPutReply {
        let (settings, client) = try connection(call)
        var options = PutOptions()
        if let lock {
            options.retention = ObjectRetention(mode: lock.lockMode == .compliance ? .compliance : .governance, retainUntil: lock.retainUntil)
        }
        let bytes = [UInt8](data)
        let result = try s3 {
            data.count > Self.multipartThreshold
                ? try client.upload(bucket: settings.bucket, key: key, body: .bytes(bytes), options: options)
                : try client.putObject(bucket: settings.bucket, key: key, bytes: bytes, options: options)
        }
        return ObjectPutReply(key: key, versionId: result.versionId, etag: result.etag, bytes: UInt64(data.count))
    }

    func getObject(_ key: String, offset: UInt64, length: UInt64, call: HostCall, consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        let (settings, client) = try connection(call)
        let range: Range<UInt64>? = offset == 0 && length == 0 ? nil : offset..<(length == 0 ? UInt64.max : offset + length)
        let object = try s3 {
            if let range, range.upperBound == UInt64.max {
                let size = try client.headObject(bucket: settings.bucket, key: key).size
                guard offset < size else { throw S3Error.local("GetObject \(key): offset \(offset) is past its end (\(size) bytes)", code: "InvalidArgument") }
                return try client.getObject(bucket: settings.bucket, key: key, range: offset..<size)
            }
            return try client.getObject(bucket: settings.bucket, key: key, range: range)
        }
        try object.bytes.withUnsafeBytes { try consume($0) }
    }

    func listObjects(_ request: ObjectListRequest, call: HostCall) throws -> ObjectListReply {
        let (settings, client) = try connection(call)
        if request.versions == true {
            let marker = request.continuation.map { text -> (String, String?) in
                let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                return (parts[0], parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil)
            }
            let page = try s3 { try client.listObjectVersions(bucket: settings.bucket, prefix: request.prefix, keyMarker: marker?.0, versionIdMarker: marker?.1) }
            return ObjectListReply(objects: page.versions.map {
                ObjectEntry(key: $0.key, bytes: $0.size, versionId: $0.versionId, latest: $0.isLatest, deleteMarker: $0.isDeleteMarker, modified: $0.lastModified)
            }, continuation: page.next.map { "\($0.keyMarker)\n\($0.versionIdMarker ?? "")" })
        }
        let page = try s3 { try client.listObjects(bucket: settings.bucket, prefix: request.prefix, continuationToken: request.continuation) }
        return ObjectListReply(objects: page.objects.map { ObjectEntry(key: $0.key, bytes: $0.size, modified: $0.lastModified) },
                               continuation: page.nextToken)
    }

    func deleteObject(_ key: String, versionId: String?, bypassGovernance: Bool, call: HostCall) throws {
        let (settings, client) = try connection(call)
        do {
            _ = try client.deleteObject(bucket: settings.bucket, key: key, versionId: versionId, bypassGovernance: bypassGovernance)
        } catch let error as S3Error where error.isAccessDenied && versionId != nil {
            throw PluginError(.locked, "\(key) version \(versionId ?? ""): the bucket refuses to delete it while its lock holds")
        } catch let error as S3Error {
            throw error.pluginError
        }
    }

    func retainObject(_ key: String, versionId: String?, lock: ObjectLock, call: HostCall) throws {
        let (settings, client) = try connection(call)
        let retention = ObjectRetention(mode: lock.lockMode == .compliance ? .compliance : .governance, retainUntil: lock.retainUntil)
        try s3 { try client.putObjectRetention(bucket: settings.bucket, key: key, versionId: versionId, retention: retention) }
    }

    // MARK: Commands

    func command(_ request: CommandRequest, call: HostCall) throws -> JSONValue {
        switch request.verb {
        // setup {endpoint, region?, bucket, access_key, secret_key_file, addressing?: "path"|"virtual", ca_file?,
        //        create_bucket?: bool, object_lock?: bool} → {endpoint, bucket, region, addressing, object_lock, created}
        case "setup":
            return try setup(request.args ?? .object([:]), call: call)
        // status → {endpoint, bucket, region, addressing, object_lock, reachable, problem?}
        case "status":
            let (settings, client) = try connection(call)
            var reply = try JSONCoding.toJSON(settings)
            if case .object(var object) = reply {
                object.removeValue(forKey: "secret_key_file")
                do {
                    try client.headBucket(settings.bucket)
                    object["reachable"] = .bool(true)
                } catch let error as S3Error {
                    object["reachable"] = .bool(false)
                    object["problem"] = .string(error.description)
                }
                reply = .object(object)
            }
            return reply
        default:
            throw PluginError(.unsupported, "online-tier has no command '\(request.verb)' (setup, status)")
        }
    }

    /// Checks the bucket with the given settings (creating it if asked), then saves them.
    func setup(_ args: JSONValue, call: HostCall) throws -> JSONValue {
        func text(_ key: String) throws -> String {
            guard let value = args[key]?.stringValue, !value.isEmpty else { throw PluginError(.invalid, "online setup needs \(key)") }
            return value
        }
        var settings = OnlineSettings(endpoint: try text("endpoint"), bucket: try text("bucket"), accessKey: try text("access_key"),
                                      secretKeyFile: try text("secret_key_file"))
        if let region = args["region"]?.stringValue { settings.region = region }
        if let addressing = args["addressing"]?.stringValue {
            guard ["path", "virtual"].contains(addressing) else { throw PluginError(.invalid, "addressing must be path or virtual, not '\(addressing)'") }
            settings.addressing = addressing
        }
        settings.caFile = args["ca_file"]?.stringValue
        settings.objectLock = args["object_lock"]?.boolValue ?? false
        let client = try settings.client()
        var created = false
        try s3 {
            // A listing (not HEAD, whose reply has no body) so that refused credentials come
            // back with S3's own reason (SignatureDoesNotMatch, InvalidAccessKeyId …).
            do {
                _ = try client.listObjects(bucket: settings.bucket, prefix: "dpm/", maxKeys: 1)
            } catch let error as S3Error where error.code == "NoSuchBucket" {
                guard args["create_bucket"]?.boolValue == true else {
                    throw S3Error.local("bucket \(settings.bucket) does not exist at \(settings.endpoint); create it (with object lock if you want locks) "
                                        + "or pass --create-bucket", code: "NoSuchBucket")
                }
                try client.createBucket(settings.bucket, objectLockEnabled: settings.objectLock)
                created = true
            }
            if settings.objectLock {
                let configuration: ObjectLockConfiguration
                do {
                    configuration = try client.getObjectLockConfiguration(settings.bucket)
                } catch let error as S3Error where error.code == "ObjectLockConfigurationNotFoundError" || error.code == "NoSuchObjectLockConfiguration" {
                    configuration = ObjectLockConfiguration(enabled: false)
                }
                guard configuration.enabled else {
                    throw S3Error.local("bucket \(settings.bucket) has no object lock, which can only be enabled when a bucket is created; "
                                        + "create a new bucket with object lock (or let dpm: --create-bucket with a new name), or set up without --lock",
                                        code: "InvalidArgument")
                }
            }
        }
        try settings.save(call)
        lock.lock()
        cached = (settings, client)
        lock.unlock()
        var reply = try JSONCoding.toJSON(settings)
        if case .object(var object) = reply {
            object.removeValue(forKey: "secret_key_file")
            object["created"] = .bool(created)
            reply = .object(object)
        }
        return reply
    }
}
