import Foundation
import PluginAPI

/// Where the online tier's bucket is, kept in the provider's state folder
/// (`STATE_DIR/online.json`, written by `setup`). The secret key stays in the file the
/// administrator named (`secret_key_file`), read at each use, never copied here.
struct OnlineSettings: Codable, Sendable {
    var endpoint: String
    var region = "us-east-1"
    var bucket: String
    var accessKey: String
    var secretKeyFile: String
    /// "path" (default) or "virtual".
    var addressing = "path"
    var caFile: String?
    var objectLock = false

    static func file(_ call: HostCall) throws -> String { try call.stateDirectory() + "/online.json" }

    static func load(_ call: HostCall) throws -> OnlineSettings {
        let path = try file(call)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PluginError(.invalid, "the online tier is not set up; run `dpm online setup --endpoint URL --bucket B --access-key ID --secret-key-file FILE`")
        }
        do {
            return try JSONCoding.decode(OnlineSettings.self, from: data)
        } catch {
            throw PluginError(.corrupt, "\(path) is damaged; run `dpm online setup` again")
        }
    }

    func save(_ call: HostCall) throws {
        let path = try Self.file(call)
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: try JSONCoding.encode(self, pretty: true)),
              rename(temporary, path) == 0 else {
            throw PluginError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The client these settings describe.
    func client() throws -> S3Client {
        guard let secretData = FileManager.default.contents(atPath: secretKeyFile) else {
            throw PluginError(.invalid, "cannot read the secret key file \(secretKeyFile); give a readable file holding the secret access key")
        }
        let secret = String(decoding: secretData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var configuration = S3Configuration(endpoint: endpoint, credentials: S3Credentials(accessKeyID: accessKey, secretAccessKey: secret),
                                            region: region, addressing: addressing == "virtual" ? .virtualHosted : .path)
        configuration.caFile = caFile
        do {
            return try S3Client(configuration)
        } catch let error as S3Error {
            throw error.pluginError
        }
    }
}
