import CSSL
import Foundation
import Glibc

/// Which end of the TLS handshake a side plays. Independent of who dialed and of who is the
/// dpm server: the usual choice is that the TCP dialer is the TLS client, but nothing relies
/// on it.
public enum TLSRole: String, Sendable {
    case client, server
}

/// The peer keys the verify callback accepts.
public enum PeerKeys: Sendable, Equatable {
    /// Only these keys; any other fails the handshake on this side (`PeerKeyRejected`).
    case pinned(Set<KeyPin>)
    /// Any key, as long as the peer presents a certificate and proves it holds the key. The
    /// caller must then decide about the key it saw (enrollment proof, registry lookup) before
    /// it trusts a single byte from the peer.
    case any
}

/// This side's verify callback refused the key the peer presented.
struct PeerKeyRejected: Error {
    let seen: KeyPin?
    let expected: Set<KeyPin>
}

/// Mutual TLS 1.3 over a `TCPSocket`, through libssl.
///
/// - Both roles present `identity`'s certificate and demand one from the peer; the pin check
///   runs inside the certificate verify callback, before the handshake completes, so a wrong
///   key never gets as far as application data.
/// - Only TLS 1.3; no session tickets or resumption (every connection proves both keys again).
/// - One reader and one writer thread may use a stream at the same time: every libssl call
///   runs under one lock on a non-blocking socket and waits (poll) outside it.
/// - Deadlines are progress deadlines: a read or write fails with `.timeout` when the socket
///   makes no progress for `timeout` seconds.
/// - SIGPIPE is ignored process-wide the first time a stream is made: libssl writes with
///   write(2), and a peer that vanished must become an error, not kill the process.
///
/// The only file of AgentChannel that drives libssl connections.
final class TLSStream: @unchecked Sendable {
    let socket: TCPSocket
    let role: TLSRole
    let localPin: KeyPin
    private(set) var peerPin: KeyPin
    private let ssl: OpaquePointer
    private let check: PeerCheck
    private let lock = NSLock()
    private var sentCloseNotify = false
    private var counters = (read: 0, written: 0)

    /// What the verify callback of one connection expects and what it saw.
    final class PeerCheck {
        let expected: PeerKeys
        var seen: KeyPin?
        var rejected = false
        init(expected: PeerKeys) { self.expected = expected }
    }

    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Runs the TLS handshake on `socket` and returns the established stream.
    /// - Throws: `PeerKeyRejected` when this side refused the peer's key; `ChannelError` with
    ///   `.keyRefusedByPeer` when the peer refused this side's key, `.timeout`, `.connectionLost`
    ///   or `.tls` otherwise.
    static func handshake(over socket: TCPSocket, identity: ChannelIdentity, role: TLSRole, peerKeys: PeerKeys,
                          timeout: TimeInterval) throws -> TLSStream {
        _ = ignoreSIGPIPE
        let stream = try TLSStream(socket: socket, identity: identity, role: role, peerKeys: peerKeys)
        do {
            _ = try stream.io("the TLS handshake", timeout: timeout) { SSL_do_handshake($0) }
        } catch {
            if stream.check.rejected { throw PeerKeyRejected(seen: stream.check.seen, expected: stream.expectedPins) }
            throw error
        }
        guard let seen = stream.check.seen else {
            throw ChannelError(.tls, "the TLS handshake with \(socket.peerAddress) finished without a peer certificate")
        }
        stream.peerPin = seen
        return stream
    }

    private init(socket: TCPSocket, identity: ChannelIdentity, role: TLSRole, peerKeys: PeerKeys) throws {
        guard let context = SSL_CTX_new(TLS_method()) else { throw ChannelIdentity.openSSLFailure("cannot make a TLS context") }
        defer { SSL_CTX_free(context) }  // the SSL object keeps its own reference
        guard dpm_ssl_ctx_tls13_only(context) == 1,
              SSL_CTX_use_certificate(context, identity.certificate) == 1,
              SSL_CTX_use_PrivateKey(context, identity.key) == 1,
              SSL_CTX_check_private_key(context) == 1,
              SSL_CTX_set_num_tickets(context, 0) == 1
        else { throw ChannelIdentity.openSSLFailure("cannot set up TLS 1.3 with the identity in \(identity.folder)") }
        dpm_ssl_ctx_partial_writes(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        SSL_CTX_set_cert_verify_callback(context, TLSStream.verifyPeer, nil)
        guard let ssl = SSL_new(context) else { throw ChannelIdentity.openSSLFailure("cannot make a TLS connection object") }
        self.ssl = ssl
        self.socket = socket
        self.role = role
        localPin = identity.pin
        peerPin = identity.pin
        check = PeerCheck(expected: peerKeys)
        // Index 0 is the application-data slot (what the SSL_set_app_data macro uses).
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(check).toOpaque())
        guard SSL_set_fd(ssl, socket.fd) == 1 else { throw ChannelIdentity.openSSLFailure("cannot attach TLS to the socket") }
        if role == .client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
    }

    deinit {
        SSL_free(ssl)
    }

    private var expectedPins: Set<KeyPin> {
        if case let .pinned(pins) = check.expected { return pins }
        return []
    }

    /// Replaces libssl's chain verification: the peer's leaf key must be pinned (or anything
    /// goes in `.any` mode, where the caller decides after the handshake). Chains, names and
    /// validity periods are deliberately ignored: every certificate is self-signed.
    private static let verifyPeer: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { store, _ in
        guard let store,
              let sslPointer = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
              let checkPointer = SSL_get_ex_data(OpaquePointer(sslPointer), 0)
        else { return 0 }
        let check = Unmanaged<PeerCheck>.fromOpaque(checkPointer).takeUnretainedValue()
        guard let leaf = X509_STORE_CTX_get0_cert(store), let pin = KeyPin(certificate: leaf) else {
            X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
            return 0
        }
        check.seen = pin
        switch check.expected {
        case .any:
            return 1
        case let .pinned(pins):
            if pins.contains(pin) { return 1 }
            check.rejected = true
            // Sent to the peer as a bad_certificate alert.
            X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
            return 0
        }
    }

    /// Reads at least one byte into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer, timeout: TimeInterval) throws -> Int {
        let count = Int32(min(buffer.count, 1 << 30))
        let result = try io("reading", timeout: timeout) { SSL_read($0, buffer.baseAddress, count) }
        lock.lock()
        counters.read += Int(result)
        lock.unlock()
        return Int(result)
    }

    /// Fills `buffer` completely.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, timeout: TimeInterval) throws {
        var filled = 0
        while filled < buffer.count {
            filled += try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]), timeout: timeout)
        }
    }

    /// Writes all of `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer, timeout: TimeInterval) throws {
        var written = 0
        while written < bytes.count {
            let count = Int32(min(bytes.count - written, 1 << 30))
            let result = try io("writing", timeout: timeout) { SSL_write($0, bytes.baseAddress! + written, count) }
            written += Int(result)
        }
        lock.lock()
        counters.written += written
        lock.unlock()
    }

    /// Application bytes read and written so far.
    var bytesRead: Int { lock.lock(); defer { lock.unlock() }; return counters.read }
    var bytesWritten: Int { lock.lock(); defer { lock.unlock() }; return counters.written }

    /// Waits until a read would make progress (bytes buffered in libssl, or on the socket);
    /// false at the deadline.
    func waitReadable(until deadline: Date) throws -> Bool {
        lock.lock()
        let pending = SSL_has_pending(ssl) == 1
        lock.unlock()
        return try pending || socket.wait(for: Int16(POLLIN), until: deadline)
    }

    /// Sends TLS close_notify once, without waiting for the peer's.
    func closeNotify() {
        lock.lock()
        defer { lock.unlock() }
        if !sentCloseNotify { _ = SSL_shutdown(ssl) }
        sentCloseNotify = true
    }

    /// Runs one libssl call until it succeeds, waiting on the socket whenever it wants to read
    /// or write, and turns its failure into a ChannelError.
    private func io(_ doing: String, timeout: TimeInterval, _ call: (OpaquePointer) -> Int32) throws -> Int32 {
        while true {
            lock.lock()
            ERR_clear_error()
            errno = 0
            let result = call(ssl)
            let code = result > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, result)
            let systemError = errno
            let failure = code == SSL_ERROR_SSL ? describeQueue() : (reason: Int32(0), text: "")
            lock.unlock()
            switch code {
            case SSL_ERROR_NONE:
                return result
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                let events = Int16(code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)
                guard try socket.wait(for: events, until: Date().addingTimeInterval(timeout)) else {
                    throw ChannelError(.timeout, "\(doing) with \(socket.peerAddress): no progress for \(timeout) s")
                }
            case SSL_ERROR_ZERO_RETURN:
                throw ChannelError(.connectionLost, "\(socket.peerAddress) closed the TLS connection while this side was \(doing)")
            case SSL_ERROR_SYSCALL:
                let reason = systemError == 0 ? "the connection was closed" : String(cString: strerror(systemError))
                throw ChannelError(.connectionLost, "the connection to \(socket.peerAddress) broke while \(doing): \(reason)")
            default:
                throw classify(failure, doing: doing)
            }
        }
    }

    /// The reason code of the first error in this thread's OpenSSL queue, and the whole queue as text.
    private func describeQueue() -> (reason: Int32, text: String) {
        let first = ERR_peek_error()
        return (first == 0 ? 0 : ERR_GET_REASON(first), ChannelIdentity.openSSLErrors())
    }

    private func classify(_ failure: (reason: Int32, text: String), doing: String) -> ChannelError {
        let certificateAlerts: Set<Int32> = [SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN,
                                             SSL_R_TLSV1_ALERT_UNKNOWN_CA, SSL_R_TLSV1_ALERT_ACCESS_DENIED,
                                             SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE]
        if failure.reason == SSL_R_UNEXPECTED_EOF_WHILE_READING {
            return ChannelError(.connectionLost, "the connection to \(socket.peerAddress) broke while \(doing): it was closed without a TLS close_notify")
        }
        if certificateAlerts.contains(failure.reason) {
            return ChannelError(.keyRefusedByPeer, "\(socket.peerAddress) refused this side's key \(localPin) in the TLS handshake (\(failure.text))")
        }
        if [SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_WRONG_VERSION_NUMBER, SSL_R_NO_PROTOCOLS_AVAILABLE].contains(failure.reason) {
            return ChannelError(.tls, "\(socket.peerAddress) does not speak TLS 1.3, which dpm's agent channel requires (\(failure.text)); is it a dpm peer on the right port?")
        }
        return ChannelError(.tls, "TLS failed with \(socket.peerAddress) while \(doing): \(failure.text)")
    }
}
