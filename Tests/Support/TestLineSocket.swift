import Foundation

/// A blocking client of a line protocol on a unix socket, for tests: the test's QMP monitor
/// and the test guest's channel. Every receive waits at most `timeout` seconds.
public final class TestLineSocket {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    public init(path: String, timeout: TimeInterval = 20) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let socket = fd
        guard TestUnixSocket.withAddress(path, { connect(socket, $0, $1) }) == 0 else {
            let reason = String(cString: strerror(errno))
            close()
            throw Failure(description: "cannot connect to \(path): \(reason)")
        }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Stops receiving: what the peer sends from now on is refused (it sees EPIPE).
    public func shutdownReading() { shutdown(fd, Int32(SHUT_RD)) }

    public func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw Failure(description: "\(path): send failed: \(String(cString: strerror(errno)))") }
    }

    public func send(line: String) throws { try send(Array(line.utf8) + [0x0A]) }

    /// The next line, without its '\n'.
    public func readLine() throws -> [UInt8] {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeFirst(newline + 1)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw Failure(description: "\(path): the connection closed or timed out") }
            buffer += chunk[0..<count]
        }
    }
}
