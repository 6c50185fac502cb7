import Foundation

/// An HTTP/1.1 reverse proxy on 127.0.0.1 that forwards each request to an upstream server
/// unchanged (so SigV4 signatures stay valid) and injects faults where `plan` says:
/// `.slowDown` answers 503 with S3's SlowDown error without forwarding, `.truncate` forwards
/// but cuts the reply off half-way through its body and closes the connection (a broken
/// transfer), `.reset` closes the connection without answering.
///
/// One thread per connection and one request per connection (the proxy adds
/// `Connection: close` upstream), which is plenty for tests. Requests must carry
/// Content-Length (the S3 client's always do).
public final class FlakyHTTPProxy {
    public enum Fault: Sendable { case slowDown, truncate, reset }

    /// Decides, for the n-th request (counted from 0) with its method and target, whether to inject a fault.
    public typealias Plan = @Sendable (_ index: Int, _ method: String, _ target: String) -> Fault?

    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }
    private let upstreamPort: Int
    private let plan: Plan
    private let listener: Int32
    private let lock = NSLock()
    private var requests = 0
    private var faults: [Fault] = []
    private var stopped = false

    /// Listens on a free port and forwards to `127.0.0.1:upstreamPort`.
    public init(upstreamPort: Int, plan: @escaping Plan) throws {
        self.upstreamPort = upstreamPort
        self.plan = plan
        (listener, port) = try LoopbackSocket.listening()
        let thread = Thread { [weak self] in self?.acceptLoop() }
        thread.name = "flaky-proxy"
        thread.start()
    }

    deinit { stop() }

    /// How many requests arrived, and the faults injected into them.
    public var statistics: (requests: Int, faults: [Fault]) {
        lock.lock()
        defer { lock.unlock() }
        return (requests, faults)
    }

    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        lock.unlock()
        if !wasStopped {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                lock.lock()
                let done = stopped
                lock.unlock()
                if done || (errno != EINTR && errno != ECONNABORTED) { return }
                continue
            }
            let thread = Thread { [self] in
                defer { close(client) }
                serve(client)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        guard let (head, body) = Self.readRequest(client) else { return }
        let requestLine = head.prefix { $0 != 13 }
        let words = String(decoding: requestLine, as: UTF8.self).split(separator: " ")
        guard words.count >= 2 else { return }
        lock.lock()
        let index = requests
        requests += 1
        let fault = plan(index, String(words[0]), String(words[1]))
        if let fault { faults.append(fault) }
        lock.unlock()

        switch fault {
        case .slowDown?:
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            Self.write(client, Array("HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: \(xml.utf8.count)\r\nConnection: close\r\n\r\n\(xml)".utf8))
            return
        case .reset?:
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            return
        default:
            break
        }
        guard let upstream = LoopbackSocket.connected(to: upstreamPort) else { return }
        defer { close(upstream) }
        // Ask upstream to close after its reply, so the reply ends where the connection does.
        var forwarded = head
        forwarded.removeLast(2)  // the blank line
        forwarded += Array("Connection: close\r\n\r\n".utf8)
        guard Self.write(upstream, forwarded + body) else { return }
        var reply: [UInt8] = []
        var cutAt: Int?
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(upstream, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            reply += buffer[0..<count]
            if fault == .truncate, cutAt == nil, let end = Self.headEnd(reply) {
                let length = Self.contentLength(Array(reply[0..<end])) ?? 0
                cutAt = end + length / 2
            }
            if let cutAt, reply.count >= cutAt {
                Self.write(client, Array(reply[0..<cutAt]))
                return
            }
            if fault == nil {
                guard Self.write(client, reply) else { return }
                reply.removeAll(keepingCapacity: true)
            }
        }
        if !reply.isEmpty { Self.write(client, reply) }
    }

    /// The request head (through the blank line) and its Content-Length body.
    private static func readRequest(_ socket: Int32) -> ([UInt8], [UInt8])? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let end = headEnd(data) {
                let head = Array(data[0..<end])
                let length = contentLength(head) ?? 0
                while data.count - end < length {
                    let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { return nil }
                    data += buffer[0..<count]
                }
                return (head, Array(data[end..<(end + length)]))
            }
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            data += buffer[0..<count]
        }
    }

    /// The index just past `\r\n\r\n`, if the head is complete.
    private static func headEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for index in 3..<data.count where data[index - 3] == 13 && data[index - 2] == 10 && data[index - 1] == 13 && data[index] == 10 {
            return index + 1
        }
        return nil
    }

    private static func contentLength(_ head: [UInt8]) -> Int? {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                return Int(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }

    @discardableResult
    private static func write(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return false }
            offset += count
        }
        return true
    }
}
