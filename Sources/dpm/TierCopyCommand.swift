import Foundation
import Host
import PluginAPI

/// The shared body of `dpm tape copy` and `dpm online sync`: a long-term copy now.
enum TierCopyCommand {
    static func run(_ invocation: Invocation, tier: String) throws -> Int32 {
        let arguments = invocation.arguments
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        var options = ProtectionService.TierCopyOptions(tier: tier)
        if let text = arguments.value("retention") {
            options.retentionDays = tier == "tape-library" ? try TapeRetention.parse(text).days : try GroupEditor.days(text, "retention")
        }
        if let text = arguments.value("encrypt") { options.encrypt = try GroupEditor.flag(text, "encrypt") }
        if let text = arguments.value("compress") { options.compress = try GroupEditor.flag(text, "compress") }
        let keyring = service.keyring()
        keyring.passphraseFile = arguments.value("passphrase-file")
        options.keyring = keyring
        let bar = ProgressBar("copy \(invocation.positionals[0]) to \(tier)", output: invocation.output)
        options.onProgress = bar.callback
        let report = try service.copyToTier(invocation.positionals[0], options: options)
        bar.finish()
        if invocation.json { try invocation.output.emit(report) } else {
            let copy = report.copy
            invocation.output.line("copied \(copy.point.id) of \(invocation.positionals[0]) to \(tier): \(copy.location)")
            invocation.output.line("  \(report.chunks) chunks, \(ByteFormat.string(report.plainBytes)) of data, \(ByteFormat.string(report.archiveBytes)) archived"
                + "\(report.encrypted ? ", encrypted" : ""), kept until \(ISOTime.string(copy.expires))")
        }
        return 0
    }
}
