import CLinux
import Foundation
import PluginAPI

/// A connected AF_UNIX stream socket with deadlines on every operation.
///
/// The clients of QEMU (QMP, NBD) and of the guest agent sit on this. Every wait goes
/// through poll(2) with a timeout, so a peer that stops answering turns into a
/// `PluginError(.transient)` naming the socket instead of a hung backup. Not thread-safe:
/// one owner at a time. SIGPIPE is never raised (MSG_NOSIGNAL); a closed peer is an error.
final class UnixSocket {
    /// The longest path a sockaddr_un holds (108 bytes with the NUL).
    static let maxPathLength = 107

    let path: String
    /// What the peer is, for messages: "QMP socket", "guest agent".
    let role: String
    private(set) var fd: Int32
    /// Bytes received but not consumed yet (line reads read ahead).
    private var pending: [UInt8] = []
    private var pendingStart = 0

    /// Connects to `path`, waiting at most `timeout` seconds.
    init(path: String, role: String, timeout: TimeInterval) throws {
        self.path = path
        self.role = role
        guard path.hasPrefix("/") else {
            throw PluginError(.invalid, "\(role) \(path): socket paths must be absolute")
        }
        guard path.utf8.count <= UnixSocket.maxPathLength else {
            throw PluginError(.invalid, "\(role) \(path): the path is longer than \(UnixSocket.maxPathLength) bytes; use a shorter socket path")
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw PluginError(.io, "\(role) \(path): socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if result != 0 && errno != EINPROGRESS && errno != EAGAIN {
            let code = errno
            Glibc.close(fd)
            fd = -1
            let hint = code == ENOENT || code == ECONNREFUSED ? " (is the process running?)" : ""
            // Nobody listening (no file, or a stale one) is "not found": the process is not running.
            throw PluginError(code == ENOENT || code == ECONNREFUSED ? .notFound : .transient,
                              "\(role) \(path): cannot connect: \(String(cString: strerror(code)))\(hint)")
        }
        if result != 0 {
            do {
                try wait(for: Int16(POLLOUT), deadline: Date().addingTimeInterval(timeout), doing: "connecting")
            } catch {
                close()
                throw error
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                close()
                throw PluginError(.transient, "\(role) \(path): cannot connect: \(String(cString: strerror(error)))")
            }
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// The process id of the peer (SO_PEERCRED), or nil when the kernel does not say.
    var peerProcessID: pid_t? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: Glibc's module omits it (_GNU_SOURCE).
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard fd >= 0, getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.pid > 0 else { return nil }
        return credentials.pid
    }

    /// Writes all of `bytes` before `deadline`.
    func write(_ bytes: [UInt8], deadline: Date) throws {
        try bytes.withUnsafeBytes { try write($0, deadline: deadline) }
    }

    func write(_ buffer: UnsafeRawBufferPointer, deadline: Date) throws {
        var offset = 0
        while offset < buffer.count {
            guard fd >= 0 else { throw PluginError(.transient, "\(role) \(path): the connection is closed") }
            let sent = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 { offset += sent; continue }
            if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(for: Int16(POLLOUT), deadline: deadline, doing: "sending")
                continue
            }
            throw PluginError(.transient, "\(role) \(path): the peer closed the connection while dpm was sending (\(String(cString: strerror(errno))))")
        }
    }

    /// Fills `buffer` completely before `deadline`.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, deadline: Date) throws {
        var offset = 0
        let buffered = min(buffer.count, pending.count - pendingStart)
        if buffered > 0 {
            pending.withUnsafeBytes { raw in
                buffer.baseAddress!.copyMemory(from: raw.baseAddress! + pendingStart, byteCount: buffered)
            }
            pendingStart += buffered
            offset = buffered
        }
        while offset < buffer.count {
            let count = try receive(into: buffer.baseAddress! + offset, count: buffer.count - offset, deadline: deadline)
            offset += count
        }
    }

    func readExactly(_ count: Int, deadline: Date) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try readExactly(into: $0, deadline: deadline) }
        return bytes
    }

    /// Reads one line (without the '\n'), refusing lines longer than `limit` bytes.
    /// - Throws: `PluginError(.transient)` when no whole line arrived before `deadline`.
    func readLine(deadline: Date, limit: Int = 16 << 20) throws -> [UInt8] {
        guard let line = try readLine(until: deadline, limit: limit) else {
            throw PluginError(.transient, "\(role) \(path): no answer in time while waiting for a reply; the peer is hung or overloaded")
        }
        return line
    }

    /// Reads one line (without the '\n'), or returns nil when no whole line arrived before
    /// `deadline` (the bytes of a partial line stay buffered for the next read).
    /// - Throws: when the peer closed the connection or sent a line longer than `limit` bytes.
    func readLine(until deadline: Date, limit: Int = 16 << 20) throws -> [UInt8]? {
        var scanned = pendingStart
        while true {
            if let newline = pending[scanned...].firstIndex(of: 0x0A) {
                let line = Array(pending[pendingStart..<newline])
                pendingStart = newline + 1
                compact()
                return line
            }
            scanned = pending.count
            guard pending.count - pendingStart <= limit else {
                throw PluginError(.corrupt, "\(role) \(path): a reply line is longer than \(limit) bytes; the peer does not speak the expected protocol")
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            guard let count = try chunk.withUnsafeMutableBytes({ try receive(into: $0.baseAddress!, count: $0.count, until: deadline) }) else {
                return nil
            }
            pending.append(contentsOf: chunk[0..<count])
        }
    }

    private func compact() {
        if pendingStart == pending.count { pending.removeAll(keepingCapacity: true); pendingStart = 0 }
        else if pendingStart > 1 << 16 { pending.removeFirst(pendingStart); pendingStart = 0 }
    }

    private func receive(into pointer: UnsafeMutableRawPointer, count: Int, deadline: Date) throws -> Int {
        guard let got = try receive(into: pointer, count: count, until: deadline) else {
            throw PluginError(.transient, "\(role) \(path): no answer in time while waiting for a reply; the peer is hung or overloaded")
        }
        return got
    }

    /// Receives at least one byte; nil when none arrived before `deadline`.
    private func receive(into pointer: UnsafeMutableRawPointer, count: Int, until deadline: Date) throws -> Int? {
        while true {
            guard fd >= 0 else { throw PluginError(.transient, "\(role) \(path): the connection is closed") }
            let got = recv(fd, pointer, count, 0)
            if got > 0 { return got }
            if got == 0 { throw PluginError(.transient, "\(role) \(path): the peer closed the connection") }
            if errno == EAGAIN || errno == EINTR {
                guard try ready(for: Int16(POLLIN), deadline: deadline) else { return nil }
                continue
            }
            throw PluginError(.io, "\(role) \(path): receive failed: \(String(cString: strerror(errno)))")
        }
    }

    private func wait(for events: Int16, deadline: Date, doing: String) throws {
        guard try ready(for: events, deadline: deadline) else {
            throw PluginError(.transient, "\(role) \(path): no answer in time while \(doing); the peer is hung or overloaded")
        }
    }

    /// Polls until `events` or `deadline`; false when the deadline passed first.
    private func ready(for events: Int16, deadline: Date) throws -> Bool {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let result = poll(&entry, 1, Int32(min(remaining * 1000, 60_000).rounded(.up)))
            if result > 0 { return true }
            if result < 0 && errno != EINTR {
                throw PluginError(.io, "\(role) \(path): poll failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
