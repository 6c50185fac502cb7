import Foundation
import PluginAPI

/// Finds the passphrase of encrypted long-term copies and keeps the server's tier key.
///
/// The passphrase comes from, in order: the file a command names (`--passphrase-file`),
/// `DPM_PASSPHRASE_FILE`, or the `tiers.passphrase_file` setting (what the server's
/// scheduled copies use). The file's first line is the passphrase. The server's key lives
/// wrapped in `DATA/tier-key.json` (format: `TierKey`), created with the first encrypted copy.
public final class TierKeyring {
    let dataDirectory: DataDirectory
    let settings: Settings
    /// A passphrase file named on the command line, which wins over the others.
    public var passphraseFile: String?
    private var unlocked: [String: TierKey] = [:]

    public init(dataDirectory: DataDirectory, settings: Settings) {
        self.dataDirectory = dataDirectory
        self.settings = settings
    }

    var keyFile: String { dataDirectory.path + "/tier-key.json" }

    func passphrase() throws -> String {
        let environment = ProcessInfo.processInfo.environment["DPM_PASSPHRASE_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        guard let file = passphraseFile ?? environment ?? settings["tiers.passphrase_file"] else {
            throw HostError(.invalid, "encrypted long-term copies need the passphrase: pass --passphrase-file FILE, or set it for the server "
                + "with `dpm config set tiers.passphrase_file FILE` (a file readable only by dpm holding the passphrase on its first line)")
        }
        let text = String(decoding: try FileSystem.readFile(file), as: UTF8.self)
        let passphrase = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard passphrase.count >= 8 else {
            throw HostError(.invalid, "the passphrase in \(file) is shorter than 8 characters; choose a longer one")
        }
        return passphrase
    }

    /// The key new encrypted copies use: the server's, created (and saved wrapped) on first use.
    public func encryptionForNewCopies() throws -> TierEncryption {
        let passphrase = try passphrase()
        if FileSystem.exists(keyFile) {
            let wrapped: WrappedTierKey
            do {
                wrapped = try JSONCoding.decode(WrappedTierKey.self, from: try FileSystem.readFile(keyFile))
            } catch let error as HostError {
                throw error
            } catch {
                throw HostError(.corrupt, "\(keyFile) is damaged; restore it from a backup of the data directory (or any tape label)", cause: error)
            }
            let key = try unlocked[wrapped.keyFingerprint] ?? TierKey.unwrap(wrapped, passphrase: passphrase, what: "this server (\(keyFile))")
            unlocked[key.fingerprint] = key
            return TierEncryption(key: key, wrapped: wrapped)
        }
        let (key, wrapped) = try TierKey.create(passphrase: passphrase)
        try FileSystem.writeAtomically(try JSONCoding.encode(wrapped), to: keyFile)
        chmod(keyFile, 0o600)
        unlocked[key.fingerprint] = key
        return TierEncryption(key: key, wrapped: wrapped)
    }

    /// Unlocks the key of an existing encrypted copy; `what` names the copy in errors.
    public func unlock(_ encryption: TierArchiveManifest.Encryption, what: String) throws -> TierKey {
        if let key = unlocked[encryption.keyFingerprint] { return key }
        let key = try TierKey.unwrap(encryption.wrappedKey, passphrase: try passphrase(), what: what)
        unlocked[key.fingerprint] = key
        return key
    }
}
