import Foundation
import Host
import PluginAPI

/// The options that choose what a recovery or a browse reads: a disk recovery point, or a
/// long-term copy on a tier, staged into the disk store first.
enum RecoverySource {
    static let options = [
        OptionSpec(name: "rp", value: "ID|latest", help: "the recovery point (default: latest)"),
        OptionSpec(name: "from", value: "disk|tape|online", help: "read a long-term copy (default: disk, else a copy)"),
        OptionSpec(name: "passphrase-file", value: "FILE", help: "the passphrase of an encrypted long-term copy"),
    ]

    static let tiers = ["disk": "disk", "tape": "tape-library", "tape-library": "tape-library", "online": "online-tier", "online-tier": "online-tier"]

    /// The point to read, and how it was staged when it came from a tier.
    static func resolve(_ invocation: Invocation, service: ProtectionService, source: DataSourceRecord)
        throws -> (RecoveryPointRecord, ProtectionService.StagingReport?) {
        let arguments = invocation.arguments
        var from: String?
        if let text = arguments.value("from") {
            guard let tier = tiers[text] else { throw HostError(.usage, "--from takes disk, tape or online, not '\(text)'") }
            from = tier
        }
        let keyring = service.keyring()
        keyring.passphraseFile = arguments.value("passphrase-file")
        let bar = ProgressBar("stage \(source.name) from \(from ?? "tier")", output: invocation.output)
        let resolved = try service.pointForRecovery(source, arguments.value("rp") ?? "latest", from: from, keyring: keyring, onProgress: bar.callback)
        bar.finish()
        if let staging = resolved.1, !invocation.json {
            invocation.output.line(staging.tier == ProtectionService.onlineTierID
                ? "reading \(staging.name) from the online tier, only the chunks the recovery needs"
                : staging.reused
                ? "using \(staging.name), staged earlier from \(staging.tier)"
                : "staged \(staging.name) from \(staging.tier) (\(staging.location)): \(ByteFormat.string(staging.bytesRead)) read, "
                    + "\(staging.chunksReceived) chunks, \(staging.chunksNew) new to the store")
        }
        return resolved
    }

    /// Adds the staging report to a JSON reply.
    static func annotate(_ reply: JSONValue, _ staging: ProtectionService.StagingReport?) throws -> JSONValue {
        guard let staging, case .object(var object) = reply else { return reply }
        object["staged_from"] = try JSONCoding.toJSON(staging)
        return .object(object)
    }
}
