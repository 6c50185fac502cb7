import Foundation

/// What an agent remembers of the server it enrolled with: the server's name and pinned key.
///
/// ## File: `pinned-server.json` in the agent's identity folder, mode 0644
/// ```json
/// {"format": "dpm-pinned-server", "version": 1, "server": "dpm01",
///  "pin": "<64 hex>", "agent": "db01", "enrolled_at": "2025-06-01T10:00:00Z"}
/// ```
/// Enrolling again (with a new code) replaces it.
public struct PinnedServer: Codable, Sendable, Equatable {
    public var format = "dpm-pinned-server"
    public var version = 1
    public var server: String
    public var pin: KeyPin
    /// The name this agent enrolled under.
    public var agent: String
    public var enrolledAt: Date

    public static let fileName = "pinned-server.json"

    public init(server: String, pin: KeyPin, agent: String, enrolledAt: Date) {
        self.server = server
        self.pin = pin
        self.agent = agent
        self.enrolledAt = enrolledAt
    }

    /// The pinned server in `folder`; nil when this agent has not enrolled yet.
    public static func load(folder: String) throws -> PinnedServer? {
        let path = folder + "/" + fileName
        guard let bytes = try AtomicFile.read(path) else { return nil }
        let pinned: PinnedServer
        do {
            pinned = try WireJSON.decode(PinnedServer.self, from: bytes, what: path)
        } catch let error as ChannelError {
            throw ChannelError(.invalid, "\(path) is damaged (\(error.description)); enroll this agent again with a new code")
        }
        guard pinned.format == "dpm-pinned-server", pinned.version == 1 else {
            throw ChannelError(.invalid, "\(path) is a \(pinned.format) file of version \(pinned.version), not dpm-pinned-server version 1")
        }
        return pinned
    }

    public func save(folder: String) throws {
        try AtomicFile.ensureFolder(folder)
        try AtomicFile.write(try WireJSON.encode(self), to: folder + "/" + PinnedServer.fileName, mode: 0o644)
    }
}
