import Foundation
import PluginAPI

/// A client of the QEMU Machine Protocol on a unix socket.
///
/// Protocol: QEMU sends a greeting (`{"QMP": {...}}`); the client answers
/// `{"execute":"qmp_capabilities"}`; afterwards each command gets exactly one `return` or
/// `error` line, with asynchronous `{"event": ...}` lines in between, which are skipped.
/// Commands are sent one at a time, so the next non-event line is the answer.
///
/// A QMP chardev serves one client at a time: while dpm is connected, other clients of the
/// same socket wait. Give dpm a monitor of its own (`-qmp unix:/run/vm-dpm.sock,server=on,wait=off`).
final class QMPClient {
    /// A command QEMU refused; `errorClass` is QMP's class ("GenericError", "DeviceNotFound").
    struct CommandError: Error, CustomStringConvertible {
        var command: String
        var errorClass: String
        var message: String
        var description: String { "\(command): \(message)" }
    }

    let socket: UnixSocket
    let path: String
    /// Seconds a command may take before the client gives up on QEMU.
    var timeout: TimeInterval
    /// QEMU's version from the greeting, e.g. "7.2.22".
    private(set) var version = ""

    /// Connects and negotiates capabilities.
    init(path: String, timeout: TimeInterval = 30) throws {
        self.path = path
        self.timeout = timeout
        socket = try UnixSocket(path: path, role: "QMP socket", timeout: min(timeout, 10))
        let greeting: JSONValue
        do {
            greeting = try nextMessage(deadline: Date().addingTimeInterval(min(timeout, 10)))
        } catch let error as PluginError where error.code == .transient {
            socket.close()
            throw PluginError(.transient, "QMP socket \(path): QEMU sent no greeting; another client may hold this monitor "
                + "(QMP serves one client at a time): give dpm a monitor of its own (-qmp unix:PATH,server=on,wait=off)")
        }
        guard let qmp = greeting["QMP"] else {
            throw PluginError(.invalid, "QMP socket \(path): the peer did not greet with QMP; is this QEMU's -qmp socket (not a guest agent or HMP monitor)?")
        }
        if let qemu = qmp["version"]?["qemu"] {
            version = ["major", "minor", "micro"].map { String(WireJSON.int(qemu[$0])) }.joined(separator: ".")
        }
        _ = try execute("qmp_capabilities")
    }

    func close() { socket.close() }

    /// The QEMU process on the other end of the socket (SO_PEERCRED).
    var peerProcessID: pid_t? { socket.peerProcessID }

    /// Runs one command and returns its `return` value.
    /// - Throws: `CommandError` when QEMU answers `error`; `PluginError` on transport failure.
    @discardableResult
    func execute(_ command: String, _ arguments: [String: JSONValue]? = nil, timeout: TimeInterval? = nil) throws -> JSONValue {
        var message: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { message["arguments"] = .object(arguments) }
        let deadline = Date().addingTimeInterval(timeout ?? self.timeout)
        var line = try WireJSON.encode(.object(message))
        line.append(0x0A)
        try socket.write(line, deadline: deadline)
        while true {
            let reply = try nextMessage(deadline: deadline)
            if reply["event"] != nil { continue }
            if let value = reply["return"] { return value }
            if let error = reply["error"] {
                throw CommandError(command: command, errorClass: error["class"]?.stringValue ?? "GenericError",
                                   message: error["desc"]?.stringValue ?? "\(error)")
            }
            throw PluginError(.corrupt, "QMP socket \(path): unexpected reply to \(command): \(reply)")
        }
    }

    /// Like `execute`, but a refusal becomes a `PluginError` whose message says what dpm was doing.
    @discardableResult
    func run(_ command: String, _ arguments: [String: JSONValue]? = nil, doing: String, timeout: TimeInterval? = nil) throws -> JSONValue {
        do {
            return try execute(command, arguments, timeout: timeout)
        } catch let error as CommandError {
            throw PluginError(.io, "QEMU at \(path) refused \(doing): \(error.message)")
        }
    }

    /// Runs a human-monitor command and returns its text output (errors come back as text).
    func humanMonitor(_ commandLine: String) throws -> String {
        try execute("human-monitor-command", ["command-line": .string(commandLine)]).stringValue ?? ""
    }

    /// Whether the guest's CPUs run (`query-status`), and the status name.
    func status() throws -> (running: Bool, status: String) {
        let reply = try execute("query-status")
        return (reply["running"]?.boolValue ?? false, reply["status"]?.stringValue ?? "unknown")
    }

    /// Waits until the generic job `id` (blockdev-create) concludes, then dismisses it.
    /// - Throws: when the job failed, with QEMU's error text.
    func awaitJob(_ id: String, doing: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let jobs = try execute("query-jobs").arrayValue ?? []
            guard let job = jobs.first(where: { $0["id"]?.stringValue == id }) else {
                throw PluginError(.io, "QEMU at \(path): job \(id) (\(doing)) vanished before it concluded")
            }
            if job["status"]?.stringValue == "concluded" {
                _ = try? execute("job-dismiss", ["id": .string(id)])
                if let error = job["error"]?.stringValue {
                    throw PluginError(.io, "QEMU at \(path) failed \(doing): \(error)")
                }
                return
            }
            guard Date() < deadline else {
                _ = try? execute("job-cancel", ["id": .string(id)])
                throw PluginError(.transient, "QEMU at \(path) did not finish \(doing) in \(Int(timeout)) s")
            }
            usleep(2_000)
        }
    }

    /// Reads lines until one parses as a JSON object.
    private func nextMessage(deadline: Date) throws -> JSONValue {
        while true {
            let line = try socket.readLine(deadline: deadline)
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            guard let value = WireJSON.decode(line), case .object = value else {
                throw PluginError(.corrupt, "QMP socket \(path): a line is not a JSON object: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            return value
        }
    }
}
