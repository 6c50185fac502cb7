import Foundation
import Host
import PluginAPI

/// `dpm online …`: the online tier on S3-compatible storage (retention up to 3360 days).
enum OnlineCommands {
    static let all = [setup, status, list, sync, attach, verify, gc]

    static let passphrase = OptionSpec(name: "passphrase-file", value: "FILE", help: "the passphrase of the online copies (else tiers.passphrase_file)")

    static let connection: [OptionSpec] = [
        OptionSpec(name: "endpoint", value: "URL", help: "the S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:8333"),
        OptionSpec(name: "region", value: "REGION", help: "the signing region (default us-east-1)"),
        OptionSpec(name: "bucket", value: "BUCKET", help: "the bucket (required)"),
        OptionSpec(name: "access-key", value: "ID", help: "the access key id (required)"),
        OptionSpec(name: "secret-key-file", value: "FILE", help: "a file holding the secret access key (required)"),
        OptionSpec(name: "addressing", value: "path|virtual", help: "path-style (default) or virtual-hosted bucket addressing"),
        OptionSpec(name: "ca-file", value: "FILE", help: "trust this CA certificate file for HTTPS"),
        OptionSpec(name: "create-bucket", value: nil, help: "create the bucket (with object lock when --lock is given)"),
    ]

    static func keyring(_ invocation: Invocation, _ service: ProtectionService) -> TierKeyring {
        let keyring = service.keyring()
        keyring.passphraseFile = invocation.arguments.value("passphrase-file")
        return keyring
    }

    /// The plugin's `setup` arguments from the connection options.
    static func connectionArguments(_ invocation: Invocation, lock: ObjectLock.Mode?) throws -> JSONValue {
        let arguments = invocation.arguments
        var args: [String: JSONValue] = [:]
        for (option, key) in [("endpoint", "endpoint"), ("region", "region"), ("bucket", "bucket"), ("access-key", "access_key"),
                              ("secret-key-file", "secret_key_file"), ("addressing", "addressing"), ("ca-file", "ca_file")] {
            if let value = arguments.value(option) { args[key] = .string(value) }
        }
        for required in ["endpoint", "bucket", "access-key", "secret-key-file"] where arguments.value(required) == nil {
            throw HostError(.usage, "--\(required) is required (see `dpm online setup --help`)")
        }
        args["create_bucket"] = .bool(arguments.has("create-bucket"))
        args["object_lock"] = .bool(lock != nil)
        return .object(args)
    }

    static func lockMode(_ invocation: Invocation) throws -> ObjectLock.Mode? {
        guard let text = invocation.arguments.value("lock") else { return nil }
        if text == "none" { return nil }
        guard let mode = ObjectLock.Mode(rawValue: text) else { throw HostError(.usage, "--lock takes governance, compliance or none, not '\(text)'") }
        return mode
    }

    static let setup = CommandDefinition(
        path: ["online", "setup"], summary: "Connect the online tier to an S3 bucket and check it.", arguments: "",
        details: """
        Online copies are always encrypted: the passphrase (--passphrase-file or tiers.passphrase_file) wraps the key,
        which is kept in the bucket, so the passphrase and the credentials alone recover the copies on another server.
        With --lock, objects are locked (S3 Object Lock, GOVERNANCE or COMPLIANCE) and a self-test proves that the
        server refuses to delete a locked version.
        """,
        options: connection + [
            OptionSpec(name: "lock", value: "governance|compliance|none", help: "lock objects against deletion (default none)"),
            OptionSpec(name: "lock-window", value: "DAYS", help: "chunks stay locked at least this long after last use (default 30)"),
            passphrase,
        ]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let lock = try lockMode(invocation)
        let window = try invocation.arguments.value("lock-window").map { try GroupEditor.days($0, "lock-window") } ?? 30
        let reply = try service.onlineSetup(try connectionArguments(invocation, lock: lock), lockMode: lock, lockWindowDays: window,
                                            keyring: keyring(invocation, service))
        if invocation.json { try invocation.output.emit(reply) } else {
            invocation.output.line("online tier ready: bucket \(invocation.arguments.value("bucket") ?? "") at \(invocation.arguments.value("endpoint") ?? "")")
            invocation.output.line("  key \(reply["key_fingerprint"]?.stringValue ?? ""), locks \(reply["lock_mode"]?.stringValue ?? "none")")
            invocation.output.line("  lock self-test: \(reply["lock_self_test"]?.stringValue ?? "")")
        }
        return 0
    }

    static let status = CommandDefinition(path: ["online", "status"], summary: "Show the online tier's connection and what it holds.", arguments: "") { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let tier = try service.onlineTier()
        var reply = try tier.command("status", nil)
        let copies = try service.catalog().tierCopies(tier: ProtectionService.onlineTierID)
        if case .object(var object) = reply {
            object["online_points"] = .number(Double(copies.count))
            object["known_chunks"] = .number(Double(try service.catalog().allOnlineChunks().count))
            reply = .object(object)
        }
        if invocation.json { try invocation.output.emit(reply) } else {
            for (key, value) in reply.objectValue?.sorted(by: { $0.key < $1.key }) ?? [] {
                invocation.output.line("\(key): \(value.stringValue ?? value.description)")
            }
        }
        return 0
    }

    static let list = CommandDefinition(
        path: ["online", "list"], summary: "List the recovery points in the bucket (read from the bucket itself).", arguments: "[DATASOURCE]",
        options: [passphrase], positionals: 0...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        var points = try service.onlinePoints(keyring: keyring(invocation, service))
        if let name = invocation.positionals.first {
            points = points.filter { $0.datasource.name == name || $0.datasource.id == name }
        }
        if invocation.json { try invocation.output.emit(["points": points]) } else {
            invocation.output.table(["DATASOURCE", "ID", "TIME", "CONSISTENCY", "CHUNKS", "EXPIRES"], points.map {
                [$0.datasource.name, $0.point.id, ISOTime.string($0.point.time), $0.point.consistency.rawValue, String($0.chunks), ISOTime.string($0.expires)]
            })
        }
        return 0
    }

    static let sync = CommandDefinition(
        path: ["online", "sync"], summary: "Copy a data source's newest recovery point online now, sending only missing chunks.",
        arguments: "DATASOURCE",
        details: "At most two online copies a day per data source. Retention follows the protection group (--retention overrides).",
        options: [OptionSpec(name: "retention", value: "DAYS", help: "keep this copy DAYS days (1-3360)"),
                  OptionSpec(name: "throttle", value: "RATE[@HH:MM-HH:MM,…]", help: "limit the upload bandwidth, e.g. 20M@08:00-18:00"),
                  passphrase],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let days = try invocation.arguments.value("retention").map { try GroupEditor.days($0, "retention") }
        if let days, !(1...GroupEditor.maxOnlineRetentionDays).contains(days) {
            throw HostError(.usage, "rule online-retention-max: online retention of \(days) days is outside 1-\(GroupEditor.maxOnlineRetentionDays) days")
        }
        let bar = ProgressBar("online sync \(invocation.positionals[0])", output: invocation.output)
        let report = try service.syncOnline(invocation.positionals[0], keyring: keyring(invocation, service),
                                            throttle: try invocation.arguments.value("throttle").map { try Throttle($0) },
                                            retentionDays: days, onProgress: bar.callback)
        bar.finish()
        if invocation.json { try invocation.output.emit(report) } else if report.alreadyOnline {
            invocation.output.line("\(report.copy.rpId) is already online")
        } else {
            let upload = report.upload
            invocation.output.line("\(report.copy.rpId) online: \(upload.chunksUploaded) of \(upload.chunksTotal) chunks sent "
                + "(\(ByteFormat.string(upload.bytesSent)) with index and manifest), \(upload.chunksAlreadyOnline) already there; "
                + "kept until \(ISOTime.string(report.copy.expires))")
        }
        return 0
    }

    static let attach = CommandDefinition(
        path: ["online", "attach"], summary: "Disaster recovery: connect a new server to an existing bucket and list its points.",
        arguments: "",
        details: "Needs only the endpoint, the credentials and the passphrase; the old server and its disks are not needed.",
        options: connection + [passphrase]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        _ = try service.onlineTier().command("setup", try connectionArguments(invocation, lock: nil))
        let copies = try service.onlineAttach(keyring: keyring(invocation, service))
        if invocation.json { try invocation.output.emit(["copies": copies]) } else {
            invocation.output.line("attached: \(copies.count) online recovery points of \(Set(copies.map(\.datasourceId)).count) data sources")
            for copy in copies { invocation.output.line("  \(copy.datasourceId) \(copy.rpId)") }
        }
        return 0
    }

    static let verify = CommandDefinition(
        path: ["online", "verify"], summary: "Check that the bucket holds every chunk of its points (--deep: download and check each).",
        arguments: "[DATASOURCE]", details: "Exits 3 when something is missing or damaged.",
        options: [OptionSpec(name: "deep", value: nil, help: "download every chunk and check it against its name"), passphrase],
        positionals: 0...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let report = try service.onlineVerify(invocation.positionals.first, deep: invocation.arguments.has("deep"), keyring: keyring(invocation, service))
        if invocation.json { try invocation.output.emit(report) } else {
            invocation.output.line("checked \(report.pointsChecked) online points, \(report.chunksChecked) chunk references, \(report.chunksDownloaded) downloaded")
            for damage in report.damaged { invocation.output.line("DAMAGED \(damage)") }
            if report.damaged.isEmpty { invocation.output.line("no damage found") }
        }
        return report.damaged.isEmpty ? 0 : 3
    }

    static let gc = CommandDefinition(
        path: ["online", "gc"], summary: "Expire online points past their retention and delete unused, unlocked chunk versions.",
        arguments: "",
        options: [OptionSpec(name: "grace", value: "DURATION", help: "keep versions younger than this (default 24h)"), passphrase]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let grace = try invocation.arguments.value("grace").map { try Duration.parse($0, what: "--grace") } ?? 86_400
        let reply = try service.onlineMaintenance(grace: grace, keyring: keyring(invocation, service))
        if invocation.json { try invocation.output.emit(reply) } else {
            invocation.output.line("expired \(reply["points_expired"]?.arrayValue?.count ?? 0) points; deleted \(Int(reply["versions_deleted"]?.numberValue ?? 0)) versions "
                + "(\(ByteFormat.string(UInt64(reply["bytes_freed"]?.numberValue ?? 0)))); \(Int(reply["versions_still_locked"]?.numberValue ?? 0)) still locked, "
                + "\(Int(reply["versions_kept_by_grace"]?.numberValue ?? 0)) younger than the grace period; \(Int(reply["locks_extended"]?.numberValue ?? 0)) locks extended")
        }
        return 0
    }
}
