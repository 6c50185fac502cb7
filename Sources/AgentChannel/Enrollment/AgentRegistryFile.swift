import Foundation
import Glibc

/// `AgentRegistry` in one JSON file, for a server without a catalog (and until the catalog
/// takes the table over).
///
/// ## Files, in a folder the caller owns
/// - `agents.json`, mode 0600 (it holds the proof keys of outstanding codes):
///   ```json
///   {"format": "dpm-agent-registry", "version": 1,
///    "agents": [{"name": "db01", "pin": "<64 hex>", "enrolled_at": "2025-06-01T10:00:00Z",
///                "revoked_at": null}],
///    "codes":  [{"id": "<16 hex>", "key": "<64 hex>", "created_at": "…", "expires_at": "…",
///                "used_at": null, "used_by": null, "outcome": null}]}
///   ```
///   Dates are ISO 8601 UTC; keys that are null may be absent. Codes used or expired more
///   than 30 days ago are dropped at the next write.
/// - `agents.lock`: an flock(2) lock; every read-modify-write holds it exclusively, so
///   processes sharing the folder (the server, `dpm agent enroll`) never lose an update and a
///   code is redeemed once.
///
/// Writes replace the file atomically (temporary file, fsync, rename).
public final class AgentRegistryFile: AgentRegistry, @unchecked Sendable {
    public let folder: String
    var path: String { folder + "/agents.json" }
    private var lockPath: String { folder + "/agents.lock" }
    private let threadLock = NSLock()

    static let format = "dpm-agent-registry"
    static let version = 1
    static let keepSpentCodes: TimeInterval = 30 * 86400

    struct Contents: Codable {
        var format = AgentRegistryFile.format
        var version = AgentRegistryFile.version
        var agents: [EnrolledAgent] = []
        var codes: [EnrollmentCodeRecord] = []
    }

    public init(folder: String) throws {
        self.folder = folder
        try AtomicFile.ensureFolder(folder)
    }

    public func agent(named name: String) throws -> EnrolledAgent? {
        try read().agents.first { $0.name == name }
    }

    public func agents() throws -> [EnrolledAgent] {
        try read().agents.sorted { $0.name < $1.name }
    }

    public func save(_ agent: EnrolledAgent) throws {
        try update { contents in
            contents.agents.removeAll { $0.name == agent.name }
            contents.agents.append(agent)
        }
    }

    public func revoke(_ name: String, at date: Date) throws -> EnrolledAgent {
        try update { contents in
            guard let index = contents.agents.firstIndex(where: { $0.name == name }) else {
                throw ChannelError(.invalid, "no agent named \(name) is enrolled in \(path); list them with `dpm agent list`")
            }
            if contents.agents[index].revokedAt == nil { contents.agents[index].revokedAt = date }
            return contents.agents[index]
        }
    }

    public func addCode(_ record: EnrollmentCodeRecord) throws {
        try update { contents in
            contents.codes.removeAll { $0.id == record.id }
            contents.codes.append(record)
        }
    }

    public func code(id: String) throws -> EnrollmentCodeRecord? {
        try read().codes.first { $0.id == id }
    }

    public func redeemCode(id: String, by agentName: String, at date: Date) throws -> CodeRedemption {
        try update { contents in
            guard let index = contents.codes.firstIndex(where: { $0.id == id }) else { return .unknown }
            let record = contents.codes[index]
            if record.usedAt != nil { return .alreadyUsed(record) }
            if record.expiresAt <= date { return .expired(record) }
            contents.codes[index].usedAt = date
            contents.codes[index].usedBy = agentName
            return .redeemed(contents.codes[index])
        }
    }

    public func recordOutcome(codeID id: String, _ outcome: String) throws {
        try update { contents in
            if let index = contents.codes.firstIndex(where: { $0.id == id }) { contents.codes[index].outcome = outcome }
        }
    }

    // MARK: - File access

    private func read() throws -> Contents {
        try locked { try load() }
    }

    private func update<R>(_ change: (inout Contents) throws -> R) throws -> R {
        try locked {
            var contents = try load()
            let result = try change(&contents)
            let horizon = Date().addingTimeInterval(-AgentRegistryFile.keepSpentCodes)
            contents.codes.removeAll { ($0.usedAt ?? $0.expiresAt) < horizon }
            try AtomicFile.write(try WireJSON.encode(contents), to: path, mode: 0o600)
            return result
        }
    }

    private func load() throws -> Contents {
        guard let bytes = try AtomicFile.read(path) else { return Contents() }
        let contents: Contents
        do {
            contents = try WireJSON.decode(Contents.self, from: bytes, what: path)
        } catch let error as ChannelError {
            throw ChannelError(.invalid, "\(path) is damaged: \(error.description); restore it from a backup", cause: nil)
        }
        guard contents.format == AgentRegistryFile.format, contents.version == AgentRegistryFile.version else {
            throw ChannelError(.invalid, "\(path) is a \(contents.format) file of version \(contents.version); this dpm reads \(AgentRegistryFile.format) version \(AgentRegistryFile.version)")
        }
        return contents
    }

    /// Runs `body` holding the folder's lock, against other threads and other processes.
    private func locked<R>(_ body: () throws -> R) throws -> R {
        threadLock.lock()
        defer { threadLock.unlock() }
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ChannelError.posix(.io, "cannot open \(lockPath)") }
        defer { close(fd) }  // closing releases the flock
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ChannelError.posix(.io, "cannot lock \(lockPath)") }
        }
        return try body()
    }
}
