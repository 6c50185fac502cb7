import Foundation
import TestSupport
import XCTest

/// The online tier end to end through `dpm`, against a real SeaweedFS (and the core of it
/// against moto): setup with its lock self-test, incremental syncs that send only changed
/// chunks (checked with the bucket's own listing, through the AWS CLI), disaster recovery on
/// a new server with the passphrase alone, item recovery reading a fraction of a point,
/// Object Lock refusing deletion, gc by version, and faults (a killed server, 503s, wrong
/// credentials, a missing bucket, a bucket without lock).
final class OnlineTests: XCTestCase {
    var root = ""
    var data: String { root + "/data" }
    var s3: TestS3Server!
    var bucket = "dpm-online"
    let passphrase = "online passphrase 1"

    override func setUpWithError() throws {
        for tool in ["qemu-img", "qemu-io", "aws"] { try TestSupport.require(tool) }
        root = try TestSupport.temporaryDirectory(self)
        try passphrase.write(toFile: root + "/pass", atomically: true, encoding: .utf8)
    }

    func start(_ kind: TestS3Server.Kind = .seaweedFS) throws {
        s3 = try TestS3Server.start(kind, for: self)
        try s3.secretKey.write(toFile: root + "/secret", atomically: true, encoding: .utf8)
    }

    @discardableResult
    func dpm(_ arguments: [String], status: Int32 = 0, dataDirectory: String? = nil, environment: [String: String] = [:],
             file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let result = try DPM.run(arguments, dataDirectory: dataDirectory ?? data, environment: ["DPM_PASSPHRASE_FILE": root + "/pass"].merging(environment) { $1 })
        XCTAssertEqual(result.status, status, "dpm \(arguments.joined(separator: " ")): \(result.stdout) \(result.stderr)", file: file, line: line)
        return result
    }

    func json(_ arguments: [String], dataDirectory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try dpm(arguments + ["--json"], dataDirectory: dataDirectory, file: file, line: line).json() as? [String: Any], file: file, line: line)
    }

    func connection(endpoint: String? = nil, secret: String? = nil) -> [String] {
        ["--endpoint", endpoint ?? s3.endpoint, "--bucket", bucket, "--access-key", s3.accessKey, "--secret-key-file", secret ?? root + "/secret"]
    }

    /// The AWS CLI against the test server: an independent client for what the bucket holds.
    func aws(_ arguments: [String]) throws -> CommandResult {
        try runProcess(["aws", "--endpoint-url", s3.endpoint, "--region", "us-east-1"] + arguments,
                       environment: ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_EC2_METADATA_DISABLED": "true"])
    }

    /// The bucket's objects under a prefix, key → size, as the server lists them.
    func bucketObjects(_ prefix: String) throws -> [String: Int] {
        let result = try aws(["s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--output", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let contents = (try JSONSerialization.jsonObject(with: Data(result.stdout.isEmpty ? "{}".utf8 : result.stdout.utf8)) as? [String: Any])?["Contents"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: contents.compactMap { object in (object["Key"] as? String).map { ($0, object["Size"] as? Int ?? 0) } })
    }

    /// A VM with a 32 MiB VHDX of random data (8 chunks of 4 MiB).
    func makeVM(_ name: String = "app") throws -> String {
        let disk = root + "/\(name).vhdx"
        XCTAssertEqual(try runProcess(["sh", "-c", "head -c 32M /dev/urandom > \(root)/\(name).raw && qemu-img convert -q -f raw -O vhdx -o block_size=1M \(root)/\(name).raw \(disk) && rm \(root)/\(name).raw"]).status, 0)
        try dpm(["vm", "add", name, "--disk", disk])
        return disk
    }

    func testIncrementalSyncsSendOnlyChangesAndANewServerRecoversWithThePassphraseAlone() throws {
        try start()
        let disk = try makeVM()
        let setup = try json(["online", "setup"] + connection() + ["--create-bucket", "--lock", "governance"])
        XCTAssertTrue((setup["lock_self_test"] as? String ?? "").hasPrefix("passed"), "\(setup)")

        try dpm(["backup", "app"])
        try FileManager.default.copyItem(atPath: disk, toPath: root + "/first.vhdx")
        let first = try XCTUnwrap(try json(["online", "sync", "app"])["upload"] as? [String: Any])
        XCTAssertEqual(first["chunks_uploaded"] as? Int, 8)
        let chunksAfterFirst = try bucketObjects("dpm/chunks/")
        XCTAssertEqual(chunksAfterFirst.count, 8)

        // 1 MiB changes: one 4 MiB chunk of eight.
        XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x5c 9M 1M", disk]).status, 0)
        try dpm(["backup", "app"])
        let second = try XCTUnwrap(try json(["online", "sync", "app"])["upload"] as? [String: Any])
        XCTAssertEqual(second["chunks_uploaded"] as? Int, 1, "only the changed chunk: \(second)")
        XCTAssertEqual(second["chunks_already_online"] as? Int, 7)
        // The bucket agrees: one new chunk object, whose size is what dpm says it sent.
        let chunksAfterSecond = try bucketObjects("dpm/chunks/")
        let added = chunksAfterSecond.filter { chunksAfterFirst[$0.key] == nil }
        XCTAssertEqual(added.count, 1)
        XCTAssertEqual(added.values.reduce(0, +), second["chunk_bytes_sent"] as? Int)
        let indexes = try bucketObjects("dpm/points/"), manifests = try bucketObjects("dpm/manifests/")
        XCTAssertEqual(indexes.count, 2)
        XCTAssertEqual(manifests.count, 2)
        XCTAssertLessThanOrEqual(second["bytes_sent"] as? Int ?? .max, added.values.reduce(0, +) + indexes.values.max()! + manifests.values.max()!)

        // Object Lock: the server refuses to delete a locked chunk version of a live point.
        let key = try XCTUnwrap(chunksAfterSecond.keys.sorted().first)
        let versions = try aws(["s3api", "list-object-versions", "--bucket", bucket, "--prefix", key, "--output", "json"])
        let version = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(versions.stdout.utf8)) as? [String: Any])?["Versions"] as? [[String: Any]])?.first?["VersionId"] as? String)
        let delete = try aws(["s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", version])
        XCTAssertNotEqual(delete.status, 0, "a locked version must not be deletable")
        XCTAssertTrue(delete.stderr.contains("AccessDenied"), delete.stderr)
        XCTAssertEqual(try bucketObjects("dpm/chunks/").count, 9)

        // Disaster recovery: the old server's data directory is gone; endpoint, credentials
        // and passphrase are enough. A wrong passphrase is refused.
        try FileManager.default.removeItem(atPath: data)
        let fresh = root + "/fresh"
        try "the wrong one".write(toFile: root + "/wrong", atomically: true, encoding: .utf8)
        let refused = try dpm(["online", "attach"] + connection() + ["--passphrase-file", root + "/wrong"], status: 1, dataDirectory: fresh)
        XCTAssertTrue(refused.stderr.contains("passphrase does not unlock"), refused.stderr)
        let attached = try json(["online", "attach"] + connection(), dataDirectory: fresh)
        XCTAssertEqual((attached["copies"] as? [[String: Any]])?.count, 2)
        let copies = try XCTUnwrap(try json(["rp", "list", "app"], dataDirectory: fresh)["long_term_copies"] as? [[String: Any]])
        let oldest = try XCTUnwrap(copies.first?["rp_id"] as? String)
        try dpm(["recover", "app", "--rp", oldest, "--copy-disks", root + "/r1"], dataDirectory: fresh)
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/r1/app.vhdx", root + "/first.vhdx"]).status, 0)
        let latest = try json(["recover", "app", "--rp", "latest", "--from", "online", "--copy-disks", root + "/r2"], dataDirectory: fresh)
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/r2/app.vhdx", disk]).status, 0)
        XCTAssertEqual(latest["tier_objects_read"] as? Int, 9, "8 chunks and the index: \(latest)")
        XCTAssertEqual(try dpm(["online", "verify", "--deep"], dataDirectory: fresh).status, 0)
    }

    func testOneFileFromAnOnlinePointReadsAFractionOfIt() throws {
        for tool in ["sfdisk", "mkfs.ext4"] { try TestSupport.require(tool) }
        try start()
        let tree = root + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/docs", withIntermediateDirectories: true)
        try "the one file\n".write(toFile: tree + "/docs/note.txt", atomically: true, encoding: .utf8)
        try Data(TestData.random(40 << 20, seed: 7)).write(to: URL(fileURLWithPath: tree + "/big.bin"))
        let disk = root + "/files.vhdx"
        let build = try runProcess(["sh", "-c", "mkfs.ext4 -q -F -d \(tree) \(root)/fs.img 64M && truncate -s 80M \(root)/d.raw "
            + "&& printf 'label: gpt\\nstart=2048, size=131072, type=linux\\n' | sfdisk -q \(root)/d.raw "
            + "&& dd if=\(root)/fs.img of=\(root)/d.raw bs=1M seek=1 conv=notrunc status=none "
            + "&& qemu-img convert -q -f raw -O vhdx \(root)/d.raw \(disk)"], environment: ["E2FSPROGS_FAKE_TIME": "1700000000"])
        XCTAssertEqual(build.status, 0, build.stderr)
        try dpm(["vm", "add", "files", "--disk", disk])
        try dpm(["online", "setup"] + connection() + ["--create-bucket"])
        try dpm(["backup", "files"])
        try dpm(["online", "sync", "files"])
        let copy = try XCTUnwrap((try json(["rp", "list", "files"])["long_term_copies"] as? [[String: Any]])?.first)
        let reply = try json(["recover", "files", "--rp", copy["rp_id"] as? String ?? "", "--from", "online", "--to-folder", root + "/out",
                              "--item", "/disk0/part1/docs/note.txt"])
        XCTAssertEqual(try String(contentsOfFile: root + "/out/note.txt", encoding: .utf8), "the one file\n")
        let read = reply["tier_bytes_read"] as? Int ?? 0, total = copy["bytes"] as? Int ?? 0
        XCTAssertGreaterThan(read, 0)
        XCTAssertLessThan(read * 4, total, "one small file reads a fraction of the point: \(read) of \(total) bytes")
    }

    func testGCFreesOnlyWhatIsUnreferencedAndUnlockedAndAKilledSyncResendsOnlyWhatIsMissing() throws {
        try start()
        _ = try makeVM()
        try dpm(["online", "setup"] + connection() + ["--create-bucket"])
        try dpm(["backup", "app"])
        // A sync killed before its manifest: nothing is listed online.
        let killed = try DPM.run(["online", "sync", "app"], dataDirectory: data,
                                 environment: ["DPM_PASSPHRASE_FILE": root + "/pass", "DPM_CRASH_AT": "online.chunk-uploaded:5"])
        XCTAssertEqual(killed.status, 9, killed.stderr)
        XCTAssertTrue((try json(["rp", "list", "app"])["long_term_copies"] as? [[String: Any]] ?? []).isEmpty)
        XCTAssertTrue(try bucketObjects("dpm/manifests/").isEmpty)
        // The retry sends only what is missing.
        let retry = try XCTUnwrap(try json(["online", "sync", "app"])["upload"] as? [String: Any])
        XCTAssertEqual((retry["chunks_uploaded"] as? Int ?? 0) + (retry["chunks_already_online"] as? Int ?? 0), 8)
        XCTAssertLessThanOrEqual(retry["chunks_uploaded"] as? Int ?? 99, 4, "at least the 4 recorded uploads are not sent again: \(retry)")

        // An object no point uses (left by another tool) goes; the point's chunks stay.
        XCTAssertEqual(try aws(["s3api", "put-object", "--bucket", bucket, "--key", "dpm/chunks/00/" + String(repeating: "00", count: 32),
                                "--body", root + "/pass"]).status, 0)
        let gc = try json(["online", "gc", "--grace", "0"])
        XCTAssertEqual(gc["versions_deleted"] as? Int, 1, "\(gc)")
        XCTAssertEqual(try bucketObjects("dpm/chunks/").count, 8)
        try dpm(["recover", "app", "--rp", "latest", "--from", "online", "--copy-disks", root + "/after-gc"])
        XCTAssertEqual(try dpm(["online", "verify", "--deep"]).status, 0)
        // Retention rules.
        let long = try dpm(["online", "sync", "app", "--retention", "3361"], status: 2)
        XCTAssertTrue(long.stderr.contains("online-retention-max"), long.stderr)
        let group = try dpm(["group", "create", "g", "--members", "app", "--online", "on", "--online-retention", "3361"], status: 2)
        XCTAssertTrue(group.stderr.contains("online-retention-max"), group.stderr)
    }

    func testLockedGCWaitsForTheLockAndTheServerKilledMidUploadFailsCleanly() throws {
        try start()
        _ = try makeVM()
        try dpm(["online", "setup"] + connection() + ["--create-bucket", "--lock", "governance", "--lock-window", "1"])
        try dpm(["backup", "app"])
        // The S3 server dies in the middle of the upload: the sync fails naming the endpoint,
        // and nothing is listed online.
        let sync = Process()
        sync.executableURL = URL(fileURLWithPath: BuiltProducts.dpm)
        sync.arguments = ["online", "sync", "app", "--data-dir", data]
        sync.environment = ProcessInfo.processInfo.environment.merging(["DPM_PASSPHRASE_FILE": root + "/pass",
                                                                       "DPM_PAUSE_AT": "online.chunk-uploaded:3"]) { $1 }
        let errors = Pipe()
        sync.standardError = errors
        sync.standardOutput = FileHandle.nullDevice
        try sync.run()
        Thread.sleep(forTimeInterval: 1.5)
        s3.stop()
        sync.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(sync.terminationStatus, 0)
        XCTAssertTrue(message.contains("127.0.0.1:\(s3.port)"), message)
        XCTAssertTrue((try json(["rp", "list", "app"])["long_term_copies"] as? [[String: Any]] ?? []).isEmpty)
        try s3.restart()
        let retry = try XCTUnwrap(try json(["online", "sync", "app"])["upload"] as? [String: Any])
        XCTAssertLessThan(retry["chunks_uploaded"] as? Int ?? 99, 8, "chunks that landed before the crash are not sent again: \(retry)")

        // An unreferenced but still locked version is left: "still locked", not a failure.
        XCTAssertEqual(try aws(["s3api", "put-object", "--bucket", bucket, "--key", "dpm/chunks/ff/" + String(repeating: "ff", count: 32),
                                "--body", root + "/pass", "--object-lock-mode", "GOVERNANCE",
                                "--object-lock-retain-until-date", ISO8601DateFormatter().string(from: Date().addingTimeInterval(86_400))]).status, 0)
        let gc = try json(["online", "gc", "--grace", "0"])
        XCTAssertEqual(gc["versions_still_locked"] as? Int, 1, "\(gc)")
        XCTAssertEqual(gc["versions_deleted"] as? Int, 0)
    }

    func testRetriesThrough503sAndClearErrorsForBadSettings() throws {
        try start()
        _ = try makeVM()
        // Every fourth request through the proxy answers 503 SlowDown.
        let proxy = try FlakyHTTPProxy(upstreamPort: s3.port) { index, _, _ in index % 4 == 3 ? .slowDown : nil }
        defer { proxy.stop() }
        try dpm(["online", "setup"] + connection(endpoint: proxy.endpoint) + ["--create-bucket"])
        try dpm(["backup", "app"])
        let sync = try XCTUnwrap(try json(["online", "sync", "app"])["upload"] as? [String: Any])
        XCTAssertEqual(sync["chunks_uploaded"] as? Int, 8)
        XCTAssertFalse(proxy.statistics.faults.isEmpty, "the proxy injected faults")
        try dpm(["recover", "app", "--rp", "latest", "--from", "online", "--copy-disks", root + "/through-proxy"])

        let other = root + "/other"
        try "not the secret".write(toFile: root + "/bad-secret", atomically: true, encoding: .utf8)
        let wrong = try dpm(["online", "setup"] + connection(secret: root + "/bad-secret"), status: 1, dataDirectory: other)
        XCTAssertTrue(wrong.stderr.contains("SignatureDoesNotMatch") && wrong.stderr.contains("secret"), wrong.stderr)
        bucket = "no-such-bucket"
        let missing = try dpm(["online", "setup"] + connection(), status: 1, dataDirectory: other)
        XCTAssertTrue(missing.stderr.contains("does not exist") && missing.stderr.contains("--create-bucket"), missing.stderr)
        bucket = "plain-bucket"
        XCTAssertEqual(try aws(["s3api", "create-bucket", "--bucket", bucket]).status, 0)
        let unlocked = try dpm(["online", "setup"] + connection() + ["--lock", "compliance"], status: 1, dataDirectory: other)
        XCTAssertTrue(unlocked.stderr.contains("no object lock") && unlocked.stderr.contains("created"), unlocked.stderr)
    }

    /// The core of the suite against a second S3 implementation.
    func testTheCoreAlsoWorksAgainstMoto() throws {
        try start(.moto)
        let disk = try makeVM()
        try dpm(["online", "setup"] + connection() + ["--create-bucket"])
        try dpm(["backup", "app"])
        XCTAssertEqual((try json(["online", "sync", "app"])["upload"] as? [String: Any])?["chunks_uploaded"] as? Int, 8)
        XCTAssertEqual(try runProcess(["qemu-io", "-f", "vhdx", "-c", "write -P 0x17 20M 1M", disk]).status, 0)
        try dpm(["backup", "app"])
        XCTAssertEqual((try json(["online", "sync", "app"])["upload"] as? [String: Any])?["chunks_uploaded"] as? Int, 1)
        let fresh = root + "/fresh"
        try dpm(["online", "attach"] + connection(), dataDirectory: fresh)
        try dpm(["recover", "app", "--rp", "latest", "--from", "online", "--copy-disks", root + "/moto"], dataDirectory: fresh)
        XCTAssertEqual(try runProcess(["qemu-img", "compare", root + "/moto/app.vhdx", disk]).status, 0)
    }
}
