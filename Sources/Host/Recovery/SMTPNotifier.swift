import Foundation
import Glibc

/// Sends a completion email for a recovery (behaviour 10) through the SMTP server set with
/// `dpm config set smtp.host HOST`, `smtp.port` (25), `smtp.from` (dpm@HOSTNAME) and
/// optionally `smtp.helo`. Plain SMTP (RFC 5321) over TCP: EHLO, MAIL FROM, RCPT TO, DATA.
public struct SMTPNotifier {
    public let host: String
    public let port: UInt16
    public let from: String
    let helo: String
    let timeout: TimeInterval

    public init(settings: Settings) throws {
        guard let host = settings["smtp.host"], !host.isEmpty else {
            throw HostError(.invalid, "--notify needs an SMTP server; set it with `dpm config set smtp.host HOST` (and smtp.port, smtp.from)")
        }
        self.host = host
        guard let port = UInt16(settings["smtp.port"] ?? "25") else { throw HostError(.invalid, "smtp.port must be a port number") }
        self.port = port
        let name = ProcessInfo.processInfo.hostName
        from = settings["smtp.from"] ?? "dpm@\(name)"
        helo = settings["smtp.helo"] ?? name
        timeout = 20
    }

    /// Sends one message; throws with the server's reply when it refuses.
    public func send(to recipient: String, subject: String, body: String) throws {
        for address in [from, recipient] where address.contains("\r") || address.contains("\n") || !address.contains("@") {
            throw HostError(.usage, "'\(address)' is not an email address")
        }
        let connection = try SMTPConnection(host: host, port: port, timeout: timeout)
        defer { connection.close() }
        try connection.expect(220, after: nil)
        try connection.expect(250, after: "EHLO \(helo)")
        try connection.expect(250, after: "MAIL FROM:<\(from)>")
        try connection.expect(250, after: "RCPT TO:<\(recipient)>")
        try connection.expect(354, after: "DATA")
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        var message = "From: dpm <\(from)>\r\nTo: <\(recipient)>\r\nSubject: \(subject.replacingOccurrences(of: "\n", with: " "))\r\n"
        message += "Date: \(date.string(from: Date()))\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            message += (line.hasPrefix(".") ? "." : "") + line + "\r\n"
        }
        try connection.expect(250, after: message + ".")
        _ = try? connection.expect(221, after: "QUIT")
    }
}

/// One SMTP conversation over a TCP socket, line by line, with a timeout on every read.
final class SMTPConnection {
    let fd: Int32
    let server: String
    private var pending = [UInt8]()

    init(host: String, port: UInt16, timeout: TimeInterval) throws {
        server = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw HostError(.transient, "SMTP server \(host) cannot be resolved; check smtp.host")
        }
        defer { freeaddrinfo(list) }
        var connected: Int32 = -1
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry, connected < 0 {
            let socketFD = socket(current.pointee.ai_family, current.pointee.ai_socktype, current.pointee.ai_protocol)
            if socketFD >= 0 {
                var interval = timeval(tv_sec: Int(timeout), tv_usec: 0)
                setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(socketFD, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
                if connect(socketFD, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 { connected = socketFD } else { Glibc.close(socketFD) }
            }
            entry = current.pointee.ai_next
        }
        guard connected >= 0 else { throw HostError(.transient, "cannot connect to SMTP server \(server): \(String(cString: strerror(errno)))") }
        fd = connected
    }

    func close() { Glibc.close(fd) }

    func send(_ line: String) throws {
        let bytes = Array((line + "\r\n").utf8)
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + done, raw.count - done, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw HostError(.transient, "SMTP server \(server) closed the connection") }
                done += n
            }
        }
    }

    /// Reads one (possibly multi-line) reply and returns its code and text.
    func reply() throws -> (Int, String) {
        var text = ""
        while true {
            let line = try readLine()
            text += line + "\n"
            let bytes = Array(line.utf8)
            guard bytes.count >= 3, let code = Int(String(line.prefix(3))) else {
                throw HostError(.transient, "SMTP server \(server) sent a malformed reply: \(line)")
            }
            if bytes.count == 3 || bytes[3] != UInt8(ascii: "-") { return (code, text) }
        }
    }

    func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                return String(decoding: line.last == 13 ? Array(line.dropLast()) : line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw HostError(.transient, "SMTP server \(server) did not answer in time") }
            pending += chunk[0..<n]
            guard pending.count < 1 << 20 else { throw HostError(.transient, "SMTP server \(server) sent an endless line") }
        }
    }

    /// Sends `command` (unless nil) and requires the reply code.
    func expect(_ code: Int, after command: String?) throws {
        if let command { try send(command) }
        let (received, text) = try reply()
        guard received == code else {
            throw HostError(.invalid, "SMTP server \(server) refused \(command.map { String($0.prefix(30)) } ?? "the greeting"): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
