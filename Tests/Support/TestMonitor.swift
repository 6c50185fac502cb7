import Foundation

/// The test's own QMP client: small, blocking, and independent of dpm's `QMPClient`, so that
/// tests observe QEMU with code other than the code they test. Thread-safe (one command at a
/// time): a test's writer thread and a guest-agent peer may share it.
public final class TestMonitor {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private let lock = NSLock()

    public init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            close()
            throw Failure(description: "cannot connect to \(path): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = try readMessage()  // greeting
        try execute("qmp_capabilities")
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Runs a command; returns its `return` value, throws its `error`.
    @discardableResult
    public func execute(_ command: String, _ arguments: [String: Any]? = nil) throws -> Any {
        lock.lock()
        defer { lock.unlock() }
        var message: [String: Any] = ["execute": command]
        if let arguments { message["arguments"] = arguments }
        var line = [UInt8](try JSONSerialization.data(withJSONObject: message))
        line.append(0x0A)
        let sent = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == line.count else { throw Failure(description: "\(command): send failed") }
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
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                if line.isEmpty { continue }
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw Failure(description: "not a JSON object: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw Failure(description: "QMP connection closed or timed out") }
            buffer += chunk[0..<count]
        }
    }
}
