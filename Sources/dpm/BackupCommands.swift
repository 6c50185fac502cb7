import Foundation
import Host
import PluginAPI

/// `dpm backup` and `dpm rp list|show`.
/// `dpm rp list --json`.
struct RecoveryPointList: Encodable {
    var datasource: String
    var name: String
    var recoveryPoints: [RecoveryPointRecord]
    /// Long-term copies on tiers (tape, online), which may outlive their disk points.
    var longTermCopies: [TierCopyRecord]
}

enum BackupCommands {
    static let all = [backup, rpList, rpShow, rpDelete]

    static let backup = CommandDefinition(
        path: ["backup"], summary: "Back up a data source and create a recovery point.", arguments: "DATASOURCE",
        details: """
        The first backup of a data source is a full copy (the initial replica). Once its chunks are durable,
        each is re-read from storage (O_DIRECT, not the page cache), decoded and re-hashed; the point is
        listed as unverified until that check ends. Damage marks the point damaged (as `dpm verify` does)
        and the command exits 3. Later backups read only what changed (from the provider's change tracking, or by hashing every
        allocated block when there is none) and store only new chunks.
          --full          read and hash every allocated block
          --incremental   read only the changes since the previous recovery point (the default)
          --express-full  a consistent full recovery point that moves only the changed blocks
        """,
        options: [
            OptionSpec(name: "full", value: nil, help: "read and hash every allocated block"),
            OptionSpec(name: "incremental", value: nil, help: "read only what changed since the last point (default)"),
            OptionSpec(name: "express-full", value: nil, help: "full recovery point, moving only changed blocks"),
            OptionSpec(name: "provider", value: "ID", help: "the workload provider, when the name is ambiguous"),
            OptionSpec(name: "ignore-scratch-space", value: nil, help: "back up even when the scratch-space check fails"),
        ],
        positionals: 1...1
    ) { invocation in
        let modes = ["full", "incremental", "express-full"].filter { invocation.arguments.has($0) }
        guard modes.count <= 1 else { throw HostError(.usage, "choose one of --full, --incremental and --express-full") }
        let mode = BackupMode(rawValue: modes.first ?? "incremental") ?? .incremental
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        var options = BackupEngine.Options(mode: mode)
        if invocation.arguments.has("ignore-scratch-space") {
            options.providerOptions = .object(["ignore_scratch_space": .bool(true)])
        }
        let bar = ProgressBar("backup \(invocation.positionals[0])", output: invocation.output)
        options.onProgress = bar.callback
        options.cancellation = CancellationFlag.onTerminationSignals()
        let report = try service.backup(invocation.positionals[0], provider: invocation.arguments.value("provider"), options: options)
        bar.finish()
        // Exit 3, as `dpm verify` does, when the initial replica's check found damage.
        let status: Int32 = report.verification?.passed == false ? 3 : 0
        if invocation.json {
            try invocation.output.emit(report)
            return status
        }
        let point = report.recoveryPoint
        let out = invocation.output
        out.line("recovery point \(point.id) of \(report.datasourceName): \(point.kind.rawValue), \(point.consistency.rawValue)-consistent")
        out.line("  \(point.reason)\(point.pauseMs > 0 ? "; paused \(point.pauseMs) ms" : "")")
        out.line("  read \(ByteFormat.string(point.bytesRead)), new \(ByteFormat.string(point.bytesNew)), stored \(ByteFormat.string(point.bytesStored)) "
                 + "of \(ByteFormat.string(point.logicalBytes)) in \(String(format: "%.2f", Double(point.durationMs) / 1000)) s")
        out.line("  chunks: \(report.chunksTotal) total, \(report.chunksRead) read, \(report.chunksNew) new, "
                 + "\(report.chunksDeduplicated) deduplicated, \(report.chunksUnchanged) unchanged, \(report.chunksZero) zero"
                 + (report.chunksExcluded > 0 ? ", \(report.chunksExcluded) excluded" : ""))
        if let check = report.verification {
            out.line("  " + check.outcome)
        }
        for note in report.notes { out.line("  note: \(note)") }
        return status
    }

    static let rpList = CommandDefinition(
        path: ["rp", "list"], summary: "List the recovery points of a data source.", arguments: "DATASOURCE",
        details: """
        STATUS is verified (the last check re-read every chunk from storage and found it intact), unverified
        (the initial replica, until its check ends), ok (not checked since it was made) or damaged.
        --calendar prints month calendars with the days that have recovery points marked.
        """,
        options: [OptionSpec(name: "calendar", value: nil, help: "show a month calendar of the days with recovery points")],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let (source, points) = try service.recoveryPoints(invocation.positionals[0])
        let copies = try service.catalog().tierCopies(datasource: source.id)
        if invocation.json {
            try invocation.output.emit(RecoveryPointList(datasource: source.id, name: source.name, recoveryPoints: points, longTermCopies: copies))
            return 0
        }
        if invocation.arguments.has("calendar") {
            invocation.output.line(RecoveryPointCalendar.render(points.map(\.time) + copies.map(\.time)))
            return 0
        }
        invocation.output.table(["ID", "TIME", "KIND", "CONSISTENCY", "PAUSE", "READ", "NEW", "STATUS"], points.map {
            [$0.id, ISOTime.string($0.time), $0.kind.rawValue, $0.consistency.rawValue, "\($0.pauseMs) ms",
             ByteFormat.string($0.bytesRead), ByteFormat.string($0.bytesNew), $0.status]
        })
        if !copies.isEmpty {
            invocation.output.line()
            invocation.output.line("Long-term copies (recover with --rp ID --from TIER):")
            invocation.output.table(["ID", "TIME", "TIER", "LOCATION", "SIZE", "EXPIRES", "STATUS"], copies.map {
                [$0.rpId, ISOTime.string($0.time), $0.tier, $0.location, ByteFormat.string($0.bytes), ISOTime.string($0.expires),
                 $0.status + ($0.keyFingerprint != nil ? ", encrypted" : "")]
            })
        }
        return 0
    }

    static let rpShow = CommandDefinition(
        path: ["rp", "show"], summary: "Show one recovery point in full.", arguments: "DATASOURCE",
        options: [OptionSpec(name: "rp", value: "ID|latest", help: "the recovery point (default: latest)")],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let source = try service.knownDataSource(invocation.positionals[0])
        let point = try service.recoveryPoint(source, invocation.arguments.value("rp") ?? "latest")
        if invocation.json { try invocation.output.emit(point) } else {
            invocation.output.line(String(decoding: try JSONCoding.encode(point, pretty: true), as: UTF8.self))
        }
        return 0
    }

    static let rpDelete = CommandDefinition(
        path: ["rp", "delete"], summary: "Delete one recovery point (run `dpm gc` to free its chunks).", arguments: "DATASOURCE",
        options: [OptionSpec(name: "rp", value: "ID", help: "the recovery point to delete (required)")],
        positionals: 1...1
    ) { invocation in
        guard let id = invocation.arguments.value("rp") else { throw HostError(.usage, "name the point: dpm rp delete DATASOURCE --rp ID") }
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let source = try service.knownDataSource(invocation.positionals[0])
        let point = try service.recoveryPoint(source, id)
        try service.deleteRecoveryPoint(source, point)
        if invocation.json { try invocation.output.emit(["deleted": point.id]) } else { invocation.output.line("deleted \(point.id)") }
        return 0
    }
}
