import Foundation
import Glibc

/// A listening TCP socket: the side that waits for the other to dial, whether that is the
/// server waiting for agents or an agent waiting for its server.
public final class TCPListener: @unchecked Sendable {
    /// The port actually bound (useful when 0 asked for any free port).
    public let port: UInt16
    public let host: String
    private let socket: TCPSocket

    /// Binds `host` ("127.0.0.1", "::1", "0.0.0.0", "::" or a name) on `port` (0: any free port).
    public init(host: String = "127.0.0.1", port: UInt16) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw ChannelError(.invalid, "cannot listen on \(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        let address = first.pointee
        let fd = Glibc.socket(address.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ChannelError.posix(.io, "cannot open a socket to listen on \(host)") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let where_ = TCPSocket.formatAddress(host: host, port: port)
        guard bind(fd, address.ai_addr, address.ai_addrlen) == 0 else {
            let error = ChannelError.posix(.io, "cannot listen on \(where_)" + (errno == EADDRINUSE ? " (another process uses the port; choose another)" : ""))
            Glibc.close(fd)
            throw error
        }
        guard listen(fd, 64) == 0 else {
            let error = ChannelError.posix(.io, "cannot listen on \(where_)")
            Glibc.close(fd)
            throw error
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) } }
        let boundPort: UInt16 = withUnsafePointer(to: &bound) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                generic.pointee.sa_family == sa_family_t(AF_INET6)
                    ? generic.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                    : generic.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        }
        self.host = host
        self.port = boundPort
        socket = TCPSocket(fd: fd, peerAddress: TCPSocket.formatAddress(host: host, port: boundPort))
    }

    /// Waits at most `timeout` seconds (nil: without end) for the next connection.
    public func accept(timeout: TimeInterval? = nil) throws -> TCPSocket {
        let deadline = timeout.map { Date().addingTimeInterval($0) } ?? .distantFuture
        while true {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(socket.fd, $0, &length) }
            }
            if fd >= 0 {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                let address = withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { TCPSocket.describe($0, length: length) }
                }
                return TCPSocket(fd: fd, peerAddress: address ?? "unknown peer")
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED else {
                throw ChannelError.posix(.io, "cannot accept on \(socket.peerAddress)")
            }
            guard try socket.wait(for: Int16(POLLIN), until: deadline) else {
                throw ChannelError(.timeout, "nobody connected to \(socket.peerAddress) within \(timeout ?? 0) s")
            }
        }
    }

    /// Wakes a blocked `accept` (which then fails) and stops accepting; the descriptor itself
    /// is closed when the listener goes away, so a thread still waiting never sees it reused.
    public func close() {
        socket.shutdown()
    }
}
