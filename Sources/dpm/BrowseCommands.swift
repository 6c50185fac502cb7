import Foundation
import Host
import PluginAPI

/// `dpm browse`: volumes, folders and files inside a recovery point.
enum BrowseCommands {
    static let all = [browse]

    static let browse = CommandDefinition(
        path: ["browse"], summary: "List the disks, volumes, folders and files inside a recovery point.", arguments: "DATASOURCE [PATH]",
        details: "PATH is / (the disks), /disk0 (its volumes), or /disk0/part1/folder. Only the chunks a listing needs are read.",
        options: RecoverySource.options,
        positionals: 1...2
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let source = try service.knownDataSource(invocation.positionals[0])
        let (point, staging) = try RecoverySource.resolve(invocation, service: service, source: source)
        let path = invocation.positionals.count > 1 ? invocation.positionals[1] : "/"
        let (listing, chunks) = try service.browse(point, path: path)
        if invocation.json {
            try invocation.output.emit(BrowseListing(rp: point.id, path: path, entries: listing.entries, chunksRead: chunks, stagedFrom: staging))
            return 0
        }
        let formatter = ISO8601DateFormatter()
        invocation.output.table(["TYPE", "SIZE", "MODIFIED", "NAME"], listing.entries.map {
            [$0.type, ByteFormat.string($0.size), $0.mtime.map { formatter.string(from: $0) } ?? "", $0.name]
        })
        return 0
    }

    struct BrowseListing: Encodable {
        var rp: String
        var path: String
        var entries: [BrowseEntry]
        var chunksRead: Int
        var stagedFrom: ProtectionService.StagingReport?
    }
}
