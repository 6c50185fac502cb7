import Foundation

/// The test's own QMP client: small, blocking, and independent of dpm's `QMPClient`, so that
/// tests observe QEMU with code other than the code they test. Thread-safe (one command at a
/// time): a test's writer thread and a guest-agent peer may share it.
public final class TestMonitor {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let connection: TestLineSocket
    private let lock = NSLock()

    public init(path: String) throws {
        do {
            connection = try TestLineSocket(path: path)
        } catch {
            throw Failure(description: "\(error)")
        }
        _ = try readMessage()  // greeting
        try execute("qmp_capabilities")
    }

    public func close() { connection.close() }

    /// Runs a command; returns its `return` value, throws its `error`.
    @discardableResult
    public func execute(_ command: String, _ arguments: [String: Any]? = nil) throws -> Any {
        lock.lock()
        defer { lock.unlock() }
        var message: [String: Any] = ["execute": command]
        if let arguments { message["arguments"] = arguments }
        do {
            try connection.send([UInt8](try JSONSerialization.data(withJSONObject: message)) + [0x0A])
        } catch {
            throw Failure(description: "\(command): \(error)")
        }
        while true {
            let reply = try readMessage()
            if reply["event"] != nil { continue }
            if let error = reply["error"] as? [String: Any] { throw Failure(description: "\(command): \(error["desc"] ?? error)") }
            return reply["return"] ?? NSNull()
        }
    }

    public func humanMonitor(_ commandLine: String) throws -> String {
        try execute("human-monitor-command", ["command-line": commandLine]) as? String ?? ""
    }

    public func status() throws -> String {
        (try execute("query-status") as? [String: Any])?["status"] as? String ?? "?"
    }

    private func readMessage() throws -> [String: Any] {
        while true {
            let line: [UInt8]
            do { line = try connection.readLine() } catch { throw Failure(description: "QMP: \(error)") }
            if line.isEmpty { continue }
            guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw Failure(description: "not a JSON object: \(String(decoding: line, as: UTF8.self))")
            }
            return object
        }
    }
}
