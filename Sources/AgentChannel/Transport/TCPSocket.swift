import Foundation
import Glibc

/// A connected, non-blocking TCP socket (IPv4 or IPv6) whose every wait has a deadline.
///
/// Which side dialed says nothing about who is the TLS client or the dpm server: a socket
/// from `connect` and one from `TCPListener.accept` are used the same way. SIGPIPE is never
/// raised for it (see `TLSStream`); a closed peer is an error, not a signal.
public final class TCPSocket: @unchecked Sendable {
    /// The peer as "127.0.0.1:5718" or "[::1]:5718", for messages.
    public let peerAddress: String
    let fd: Int32
    private let lock = NSLock()
    private var isClosed = false

    init(fd: Int32, peerAddress: String) {
        self.fd = fd
        self.peerAddress = peerAddress
        var yes: Int32 = 1
        // Frames are often small requests that wait for a reply: do not let Nagle hold them back.
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close() }

    /// Dials `host:port` (a name or a literal address), trying each address it resolves to,
    /// and waits at most `timeout` seconds for each.
    public static func connect(host: String, port: UInt16, timeout: TimeInterval) throws -> TCPSocket {
        let target = formatAddress(host: host, port: port)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            throw ChannelError(.connectFailed, "cannot resolve \(host): \(String(cString: gai_strerror(resolved))); check the host name")
        }
        defer { freeaddrinfo(first) }
        var reasons: [String] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let fd = socket(current.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { reasons.append(String(cString: strerror(errno))); continue }
            let candidate = TCPSocket(fd: fd, peerAddress: describe(current.pointee.ai_addr, length: current.pointee.ai_addrlen) ?? target)
            if Glibc.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 { return candidate }
            guard errno == EINPROGRESS else { reasons.append(String(cString: strerror(errno))); continue }
            do {
                guard try candidate.wait(for: Int16(POLLOUT), until: Date().addingTimeInterval(timeout)) else {
                    reasons.append("no answer within \(timeout) s")
                    continue
                }
            } catch {
                reasons.append(String(describing: error))
                continue
            }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
            if failure == 0 { return candidate }
            reasons.append(String(cString: strerror(failure)))
        }
        throw ChannelError(.connectFailed, "cannot connect to \(target): \(reasons.joined(separator: "; ")); is the peer running and listening on port \(port)?")
    }

    /// Waits until the socket is ready for `events` (POLLIN, POLLOUT); false at the deadline.
    /// Hang-ups and errors count as ready: the next read or write reports them.
    func wait(for events: Int16, until deadline: Date) throws -> Bool {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let milliseconds = Int32(min(remaining * 1000, Double(Int32.max)).rounded(.up))
            let result = poll(&entry, 1, milliseconds)
            if result > 0 { return true }
            if result < 0 && errno != EINTR { throw ChannelError.posix(.io, "poll on the connection to \(peerAddress)") }
        }
    }

    /// Shuts both directions down: every wait on the socket wakes and every later read or write
    /// fails, but the descriptor stays valid until `close` (so no other thread can find it reused).
    public func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        if !isClosed { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Closes the descriptor. Call it only when no other thread uses the socket.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if !isClosed { Glibc.close(fd) }
        isClosed = true
    }

    static func formatAddress(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// "host:port" of a socket address, numerically.
    static func describe(_ address: UnsafePointer<sockaddr>?, length: socklen_t) -> String? {
        guard let address else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        guard getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                          NI_NUMERICHOST | NI_NUMERICSERV) == 0 else { return nil }
        return formatAddress(host: String(cString: host), port: UInt16(String(cString: service)) ?? 0)
    }
}
