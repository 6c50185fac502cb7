import Foundation
import Host

/// `dpm verify`, `dpm prune`, `dpm gc` and `dpm datasources retention`.
enum MaintenanceCommands {
    static let all = [verify, prune, gc, retention]

    static let verify = CommandDefinition(
        path: ["verify"], summary: "Re-read stored chunks from storage and re-hash them; mark and list damaged recovery points.",
        arguments: "[DATASOURCE]",
        details: "Exits 3 when damage is found, listing the damaged recovery points.",
        options: [OptionSpec(name: "rp", value: "ID|latest", help: "verify only this recovery point")],
        positionals: 0...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let bar = ProgressBar("verify", output: invocation.output)
        let result = try service.verify(invocation.positionals.first, rp: invocation.arguments.value("rp"), onProgress: bar.callback)
        bar.finish()
        if invocation.json {
            try invocation.output.emit(result)
        } else {
            invocation.output.line("checked \(result.pointsChecked) recovery points: \(result.chunksChecked) chunks (\(ByteFormat.string(result.bytesChecked))) "
                                   + "re-read from storage \(result.reads.method), decoded and re-hashed")
            for damage in result.damaged { invocation.output.line("DAMAGED \(damage.datasource) \(damage.rp): \(damage.problem)") }
            if result.damaged.isEmpty { invocation.output.line("no damage found") }
        }
        return result.damaged.isEmpty ? 0 : 3
    }

    static let prune = CommandDefinition(
        path: ["prune"], summary: "Remove recovery points older than each data source's retention.", arguments: "",
        details: "The newest healthy recovery point of each data source is always kept. Run `dpm gc` afterwards to free space.",
        options: [OptionSpec(name: "dry-run", value: nil, help: "list what would be removed, remove nothing")]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let result = try service.prune(dryRun: invocation.arguments.has("dry-run"))
        if invocation.json {
            try invocation.output.emit(result)
        } else {
            let verb = invocation.arguments.has("dry-run") ? "would remove" : "removed"
            for removal in result.removed { invocation.output.line("\(verb) \(removal.datasource) \(removal.rp)") }
            for skipped in result.skipped { invocation.output.line("skipped \(skipped)") }
            for copy in result.expiredCopies { invocation.output.line("\(invocation.arguments.has("dry-run") ? "would expire" : "expired") long-term copy \(copy)") }
            invocation.output.line("\(verb) \(result.removed.count) recovery points, kept \(result.kept)")
        }
        return 0
    }

    static let gc = CommandDefinition(
        path: ["gc"], summary: "Remove chunks no recovery point uses (mark and sweep, with a grace period).", arguments: "",
        details: "Waits for running backups before sweeping. The grace period defaults to the gc.grace setting, else 24h.",
        options: [OptionSpec(name: "grace", value: "DURATION", help: "keep files younger than this (e.g. 0, 30m, 24h)")]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let grace = try invocation.arguments.value("grace").map { try Duration.parse($0, what: "--grace") }
        let result = try service.collectGarbage(grace: grace)
        if invocation.json {
            try invocation.output.emit(result)
        } else {
            invocation.output.line("removed \(result.chunksRemoved) chunks (\(ByteFormat.string(result.bytesFreed))), kept \(result.chunksMarked) in use"
                                   + (result.chunksKeptByGrace > 0 ? " and \(result.chunksKeptByGrace) younger than the grace period" : ""))
            if result.orphanIndexesRemoved + result.temporaryFilesRemoved > 0 {
                invocation.output.line("removed \(result.orphanIndexesRemoved) orphan index files and \(result.temporaryFilesRemoved) temporary files")
            }
        }
        return 0
    }

    static let retention = CommandDefinition(
        path: ["datasources", "retention"], summary: "Set how many days a data source's recovery points are kept.",
        arguments: "DATASOURCE DAYS", positionals: 2...2
    ) { invocation in
        guard let days = Int(invocation.positionals[1]) else { throw HostError(.usage, "DAYS must be a whole number") }
        let record = try ProtectionService(dataDirectory: invocation.dataDirectory).setRetention(invocation.positionals[0], days: days)
        if invocation.json { try invocation.output.emit(record) } else {
            invocation.output.line("\(record.name): recovery points kept \(record.retentionDays) days")
        }
        return 0
    }
}
