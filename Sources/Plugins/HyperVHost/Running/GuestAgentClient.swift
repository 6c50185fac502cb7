import Foundation
import PluginAPI

/// A client of the QEMU guest agent (qemu-ga) on the host end of its channel, a unix socket
/// (`-chardev socket,path=…,server=on,wait=off,id=qga0 -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0`).
///
/// Protocol (qemu-ga-ref(7), and what Debian's qemu-ga 7.2 does, as seen by the real-guest
/// tests):
/// - One JSON command per line, `{"execute": NAME, "arguments": {...}}`; one JSON reply per
///   line, `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}`.
/// - The channel outlives clients. A reply that a client did not read before it went away
///   is not lost: the agent's write waits until the next client connects, which receives it
///   first. A client that died mid-command may also have left partial input in the agent.
/// - So every session starts with the handshake: the client sends a 0xFF byte, which the
///   agent's parser takes as invalid input (it drops what it had and answers with an error
///   line, "JSON parse error, stray '\uFFFD'"), then `guest-sync-delimited` with a random
///   integer id (a non-integer is refused); the agent answers with a 0xFF byte, then
///   `{"return": id}`. Everything before that answer is stale and discarded. Error lines are
///   never preceded by 0xFF.
/// - The handshake is repeated after any timeout (the late reply is still coming), and is
///   resent with a new id while unanswered: an agent that was not reading yet, or restarted,
///   may have lost it.
/// - QEMU's chardev serves one client at a time. Another client's connection is accepted by
///   the kernel (listen backlog) but not by QEMU until the first closes, so it sees no answer.
/// - While frozen, the agent refuses every command but guest-ping, guest-info, guest-sync,
///   guest-sync-delimited, guest-fsfreeze-status and guest-fsfreeze-thaw, with class
///   CommandNotFound and "Command NAME has been disabled: the agent is in frozen state".
///   `guest-info` lists each command with `enabled` (false also for commands blocked by
///   qemu-ga's `--block-rpcs`).
///
/// Every call has a deadline: an agent that does not answer is reported, never waited on forever.
final class GuestAgentClient {
    struct CommandError: Error, CustomStringConvertible {
        var command: String
        /// The agent's error class, e.g. "CommandNotFound", "GenericError".
        var errorClass: String
        var message: String
        var description: String { "\(command): \(message)" }
    }

    /// What `guest-info` reports.
    struct Info {
        var version: String
        /// Every command the agent knows, with whether it is enabled now; nil when the agent
        /// did not list them.
        var commands: [String: Bool]?
    }

    /// How long an unanswered `guest-sync-delimited` waits before it is sent again.
    static let resendInterval: TimeInterval = 1

    let path: String
    private let socket: UnixSocket
    /// False until the handshake is answered, and after a command timed out (its reply may
    /// still arrive): the next command synchronises first.
    private var inSync = false

    /// Whether the last command was answered, so that the next one can be sent at once.
    var isSynchronised: Bool { inSync }

    /// Connects and synchronises within `timeout` seconds.
    init(path: String, timeout: TimeInterval = 3) throws {
        self.path = path
        socket = try UnixSocket(path: path, role: "guest agent", timeout: timeout)
        try synchronise(deadline: Date().addingTimeInterval(timeout), timeout: timeout)
    }

    func close() { socket.close() }

    private func synchronise(deadline: Date, timeout: TimeInterval) throws {
        var id = 0
        var resendAt = Date.distantPast
        while true {
            let now = Date()
            guard now < deadline else {
                throw PluginError(.transient, "guest agent \(path): no answer to guest-sync-delimited within \(GuestAgentClient.seconds(timeout)) s: "
                    + "qemu-ga is not running in the guest (or it is still starting), it is hung, or another client holds the channel "
                    + "(QEMU serves one client at a time)")
            }
            if now >= resendAt {
                id = Int.random(in: 1_000_000_000...2_000_000_000)
                try socket.write([0xFF] + (try line("guest-sync-delimited", ["id": .number(Double(id))])), deadline: deadline)
                resendAt = now.addingTimeInterval(GuestAgentClient.resendInterval)
            }
            guard let line = try socket.readLine(until: min(resendAt, deadline)) else { continue }
            if let mark = line.lastIndex(of: 0xFF) {
                // Only the answer to the latest id counts; an earlier one is as stale as the rest.
                if WireJSON.decode(Array(line[(mark + 1)...]))?["return"]?.numberValue == Double(id) {
                    inSync = true
                    return
                }
                continue
            }
            if let error = WireJSON.decode(line)?["error"], let text = error["desc"]?.stringValue, text.contains("guest-sync-delimited") {
                throw PluginError(.unsupported, "guest agent \(path) refused guest-sync-delimited (\(text)); dpm needs a qemu-ga that offers it (1.1 or later)")
            }
        }
    }

    /// Runs one command and returns its `return` value.
    /// - Throws: `CommandError` when the agent answers `error`; `PluginError(.transient)` on timeout.
    @discardableResult
    func execute(_ command: String, _ arguments: [String: JSONValue]? = nil, timeout: TimeInterval) throws -> JSONValue {
        let deadline = Date().addingTimeInterval(timeout)
        if !inSync { try synchronise(deadline: deadline, timeout: timeout) }
        try socket.write(try line(command, arguments), deadline: deadline)
        inSync = false
        while true {
            guard let line = try socket.readLine(until: deadline) else {
                throw PluginError(.transient, "guest agent \(path): no answer to \(command) within \(GuestAgentClient.seconds(timeout)) s; the agent is hung or overloaded")
            }
            let body = line.lastIndex(of: 0xFF).map { Array(line[($0 + 1)...]) } ?? line
            if body.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            guard let reply = WireJSON.decode(body) else {
                throw PluginError(.corrupt, "guest agent \(path): a reply to \(command) is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            if let value = reply["return"] {
                inSync = true
                return value
            }
            if let error = reply["error"] {
                inSync = true
                throw CommandError(command: command, errorClass: error["class"]?.stringValue ?? "GenericError",
                                   message: error["desc"]?.stringValue ?? "\(error)")
            }
        }
    }

    private func line(_ command: String, _ arguments: [String: JSONValue]?) throws -> [UInt8] {
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { message["arguments"] = .object(arguments) }
        return try WireJSON.encode(.object(message)) + [0x0A]
    }

    private static func seconds(_ interval: TimeInterval) -> String {
        interval == interval.rounded() ? "\(Int(interval))" : String(format: "%.1f", interval)
    }

    // MARK: The commands dpm uses

    func ping(timeout: TimeInterval = 3) throws { try execute("guest-ping", timeout: timeout) }

    func info(timeout: TimeInterval = 3) throws -> Info {
        let reply = try execute("guest-info", timeout: timeout)
        let commands = reply["supported_commands"]?.arrayValue.map { list in
            Dictionary(list.compactMap { entry in entry["name"]?.stringValue.map { ($0, entry["enabled"]?.boolValue ?? true) } }) { first, _ in first }
        }
        return Info(version: reply["version"]?.stringValue ?? "unknown", commands: commands)
    }

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
