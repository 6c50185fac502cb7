import Foundation
import PluginAPI

/// A client of the QEMU guest agent (qemu-ga) on the host end of its channel, a unix socket
/// (`-chardev socket,path=…,server=on,wait=off,id=qga0 -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0`).
///
/// Protocol: one JSON command per line, `{"execute": NAME, "arguments": {...}}`; one JSON
/// reply per line, `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}`. The channel
/// may hold stale replies from an earlier client, so a session starts with
/// `guest-sync-delimited`: the client sends a 0xFF byte (the agent discards its partial
/// input), then the command with a random id; the agent answers with a 0xFF byte and
/// `{"return": id}`. Everything before that answer is discarded.
///
/// Every call has a timeout: an agent that does not answer is reported, never waited on forever.
final class GuestAgentClient {
    struct CommandError: Error, CustomStringConvertible {
        var command: String
        /// The agent's error class, e.g. "CommandNotFound", "GenericError".
        var errorClass: String
        var message: String
        var description: String { "\(command): \(message)" }
    }

    let path: String
    private let socket: UnixSocket

    /// Connects and synchronises within `timeout` seconds.
    init(path: String, timeout: TimeInterval = 3) throws {
        self.path = path
        socket = try UnixSocket(path: path, role: "guest agent", timeout: timeout)
        try synchronise(timeout: timeout)
    }

    func close() { socket.close() }

    private func synchronise(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        let id = Int.random(in: 1...2_000_000_000)
        try socket.write([0xFF], deadline: deadline)
        try send("guest-sync-delimited", ["id": .number(Double(id))], deadline: deadline)
        while true {
            try socket.skip(through: 0xFF, deadline: deadline)
            // The delimiter may be followed by the reply on the same line or the next one.
            let line = try socket.readLine(deadline: deadline)
            if let reply = WireJSON.decode(line), reply["return"]?.numberValue == Double(id) { return }
            if let reply = WireJSON.decode(line), let error = reply["error"] {
                throw PluginError(.unsupported, "guest agent \(path) refused guest-sync-delimited: \(error["desc"]?.stringValue ?? "\(error)")")
            }
        }
    }

    /// Runs one command and returns its `return` value.
    /// - Throws: `CommandError` when the agent answers `error`; `PluginError(.transient)` on timeout.
    @discardableResult
    func execute(_ command: String, _ arguments: [String: JSONValue]? = nil, timeout: TimeInterval) throws -> JSONValue {
        let deadline = Date().addingTimeInterval(timeout)
        try send(command, arguments, deadline: deadline)
        while true {
            let line = try socket.readLine(deadline: deadline)
            let trimmed = line.filter { $0 != 0xFF && $0 != 0x0D && $0 != 0x20 }
            if trimmed.isEmpty { continue }
            guard let reply = WireJSON.decode(Array(line.drop { $0 == 0xFF })) else {
                throw PluginError(.corrupt, "guest agent \(path): a reply to \(command) is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            if let value = reply["return"] { return value }
            if let error = reply["error"] {
                throw CommandError(command: command, errorClass: error["class"]?.stringValue ?? "GenericError",
                                   message: error["desc"]?.stringValue ?? "\(error)")
            }
        }
    }

    private func send(_ command: String, _ arguments: [String: JSONValue]?, deadline: Date) throws {
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { message["arguments"] = .object(arguments) }
        var line = try WireJSON.encode(.object(message))
        line.append(0x0A)
        try socket.write(line, deadline: deadline)
    }

    // MARK: The commands dpm uses

    func ping(timeout: TimeInterval = 3) throws { try execute("guest-ping", timeout: timeout) }

    /// "thawed" or "frozen".
    func freezeStatus(timeout: TimeInterval = 3) throws -> String {
        try execute("guest-fsfreeze-status", timeout: timeout).stringValue ?? "unknown"
    }

    /// Freezes the guest's filesystems; returns how many were frozen.
    func freeze(timeout: TimeInterval) throws -> Int {
        WireJSON.int(try execute("guest-fsfreeze-freeze", timeout: timeout))
    }

    /// Thaws the guest's filesystems; returns how many were thawed.
    @discardableResult
    func thaw(timeout: TimeInterval) throws -> Int {
        WireJSON.int(try execute("guest-fsfreeze-thaw", timeout: timeout))
    }

    /// The guest's mounted filesystems (`guest-get-fsinfo`): mount point, type and the
    /// disks under each. Nil when the agent does not offer the command.
    func filesystems(timeout: TimeInterval = 5) throws -> [(mountpoint: String, type: String)]? {
        do {
            let list = try execute("guest-get-fsinfo", timeout: timeout).arrayValue ?? []
            return list.map { ($0["mountpoint"]?.stringValue ?? "?", $0["type"]?.stringValue ?? "?") }
        } catch let error as CommandError where error.errorClass == "CommandNotFound" || error.message.contains("disabled") {
            return nil
        }
    }
}
