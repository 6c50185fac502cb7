import Foundation

/// The sockaddr_un plumbing of the tests' unix-socket clients and listeners (the test
/// monitor, the guest channel, the guest-agent peer, misbehaving peers).
public enum TestUnixSocket {
    /// Runs `body` with `path` as the address and length connect(2) and bind(2) take.
    public static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A listening socket at `path`, replacing any file there.
    public static func listen(_ path: String, backlog: Int32) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, withAddress(path, { bind(fd, $0, $1) }) == 0, Glibc.listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw TestLineSocket.Failure(description: "cannot listen on \(path): \(reason)")
        }
        return fd
    }
}
