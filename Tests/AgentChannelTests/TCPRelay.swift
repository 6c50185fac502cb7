@testable import AgentChannel
import Foundation
import Glibc

/// The network between two sides: a plain TCP relay on loopback that the test can cut, as a
/// pulled cable or a dead router would (both sides' sockets are closed by the relay).
final class TCPRelay: @unchecked Sendable {
    let listener: TCPListener
    private let targetPort: UInt16
    private let lock = NSLock()
    private var sockets: [TCPSocket] = []
    private var relayedBytes = 0

    init(targetPort: UInt16) throws {
        listener = try TCPListener(host: "127.0.0.1", port: 0)
        self.targetPort = targetPort
    }

    var port: UInt16 { listener.port }

    /// Bytes relayed so far, both directions.
    var bytes: Int { lock.lock(); defer { lock.unlock() }; return relayedBytes }

    /// Relays one connection in the background.
    func relayOne() {
        _ = Background("the relay") { [self] in
            let a = try listener.accept(timeout: 30)
            let b = try TCPSocket.connect(host: "127.0.0.1", port: targetPort, timeout: 10)
            lock.lock()
            sockets = [a, b]
            lock.unlock()
            let back = Background("relay back") { self.copy(from: b, to: a) }
            copy(from: a, to: b)
            _ = try back.wait()
        }
    }

    /// Cuts the connection: both ends see it drop.
    func cut() {
        lock.lock()
        defer { lock.unlock() }
        for socket in sockets { socket.shutdown() }
    }

    private func copy(from source: TCPSocket, to target: TCPSocket) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while (try? source.wait(for: Int16(POLLIN), until: .distantFuture)) == true {
            let count = read(source.fd, &buffer, buffer.count)
            if count < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard count > 0 else { break }
            var written = 0
            while written < count {
                guard (try? target.wait(for: Int16(POLLOUT), until: .distantFuture)) == true else { break }
                let result = buffer.withUnsafeBytes { write(target.fd, $0.baseAddress! + written, count - written) }
                if result < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                guard result > 0 else { cut(); return }
                written += result
            }
            lock.lock()
            relayedBytes += count
            lock.unlock()
        }
        cut()
    }
}
