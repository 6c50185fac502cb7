import Foundation
import CLinux
import Glibc

/// The content-addressed chunk store of the short-term disk tier.
///
/// Layout of `DATA/store/`:
///
///     config.json            StoreConfiguration: chunk size, compression, encryption
///     chunks/XX/DIGEST       one ChunkBlob per distinct chunk (DIGEST in lower-case hex,
///                            XX its first two digits)
///     points/DS/RP.dpmidx    one RecoveryPointIndex per recovery point; DS is the data source
///                            id escaped for file names: ASCII letters, digits, '_', '-' and a
///                            non-leading '.' stay, every other byte becomes %XX (upper-case
///                            hex), and an empty id becomes '%'
///     tmp/                   chunks and indexes being written
///     quarantine/            chunks verify found damaged, kept for inspection
///
/// Crash safety: a chunk is written to `tmp/`, made durable (syncfs), and only then renamed
/// to its name; the renames are made durable before the index that references them is
/// written, and the index (temporary file, fsync, rename, directory fsync) before the
/// catalog row. A crash therefore leaves only unreferenced chunks and temporary files,
/// which `dpm gc` removes. Concurrency: backups hold `locks/store.lock` shared for their
/// whole run; the sweep of `dpm gc` holds it exclusively (see GarbageCollector).
public final class ChunkStore: @unchecked Sendable {
    public let directory: String
    public let configuration: StoreConfiguration
    public let keys: StoreKeys?

    public var chunkSize: Int { configuration.chunkSize }
    public var chunksDirectory: String { directory + "/chunks" }
    public var pointsDirectory: String { directory + "/points" }
    public var temporaryDirectory: String { directory + "/tmp" }

    init(directory: String, configuration: StoreConfiguration, keys: StoreKeys?) {
        self.directory = directory
        self.configuration = configuration
        self.keys = keys
    }

    /// Opens the store, creating it on first use with the given options.
    /// - Parameters:
    ///   - keyFile: the master key file; required for an encrypted store, and makes a new store encrypted.
    public static func open(directory: String, keyFile: String? = nil, create: Bool = true,
                            chunkSize: Int = StoreConfiguration.defaultChunkSize) throws -> ChunkStore {
        let configPath = directory + "/config.json"
        let keys = try keyFile.map { try StoreKeys.load($0) }
        if !FileSystem.exists(configPath) {
            guard create else { throw HostError(.notFound, "no chunk store at \(directory); run a backup to create it") }
            guard chunkSize >= 64 << 10, chunkSize <= 64 << 20, chunkSize % 4096 == 0 else {
                throw HostError(.invalid, "chunk size \(chunkSize) must be a multiple of 4096 between 64 KiB and 64 MiB")
            }
            let configuration = StoreConfiguration(id: UUID().uuidString.lowercased(), chunkSize: chunkSize,
                                                   encryption: keys == nil ? "none" : "aes-256-gcm", keyCheck: keys?.check ?? "")
            for sub in ["", "/chunks", "/points", "/tmp"] { try FileSystem.makeDirectory(directory + sub) }
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileSystem.writeAtomically(try encoder.encode(configuration), to: configPath)
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let configuration: StoreConfiguration
        do {
            configuration = try decoder.decode(StoreConfiguration.self, from: try FileSystem.readFile(configPath))
        } catch let error as HostError {
            throw error
        } catch {
            throw HostError(.corrupt, "store configuration \(configPath) is damaged; restore it from a copy", cause: error)
        }
        guard configuration.format == "dpm-store", configuration.version == 1 else {
            throw HostError(.corrupt, "\(configPath) describes format \(configuration.format) v\(configuration.version), which this dpm cannot read")
        }
        if configuration.encrypted {
            guard let keys else {
                throw HostError(.invalid, "the store at \(directory) is encrypted; pass its key file with --key-file or set store.key_file")
            }
            guard keys.check == configuration.keyCheck else {
                throw HostError(.invalid, "key file \(keyFile ?? "") does not belong to the store at \(directory); use the key file it was created with")
            }
        }
        for sub in ["/chunks", "/points", "/tmp"] { try FileSystem.makeDirectory(directory + sub) }
        return ChunkStore(directory: directory, configuration: configuration, keys: configuration.encrypted ? keys : nil)
    }

    public func chunkPath(_ digest: ChunkDigest) -> String {
        let hex = digest.hex
        return "\(chunksDirectory)/\(hex.prefix(2))/\(hex)"
    }

    /// Whether a chunk is stored (it is not checked here; `dpm verify` does that).
    public func contains(_ digest: ChunkDigest) -> Bool {
        access(chunkPath(digest), F_OK) == 0
    }

    /// A per-thread codec for writing and reading chunks.
    public func makeCodec() throws -> ChunkCodec {
        try ChunkCodec(store: self)
    }

    /// Makes everything written to the store's file system so far durable.
    func syncFileSystem() throws {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw HostError.posix("cannot open", path: directory) }
        defer { close(fd) }
        guard dpm_syncfs(fd) == 0 else { throw HostError.posix("cannot sync the file system of", path: directory) }
    }
}
