import Foundation

/// A stand-in for qemu-ga, speaking its protocol on a unix socket (JSON lines; a 0xFF byte
/// from the client resets the parser; guest-sync-delimited answers with 0xFF first). It
/// freezes nothing: it records what it was asked, in order, and keeps a "frozen" state, so
/// a test can check that the freeze came before the snapshot and the thaw after it.
///
/// Never point dpm at the machine's own qemu-ga in tests: a freeze would freeze this machine.
public final class GuestAgentPeer {
    public enum Behaviour: Sendable {
        /// Answers every command.
        case normal
        /// Takes the freeze (state "frozen") but never answers it; other connections are served.
        case hangOnFreeze
        /// Refuses the freeze with an error.
        case failFreeze
    }

    public struct Entry: Sendable {
        public var command: String
        /// The client's process id (SO_PEERCRED): dpm's, or its watchdog's.
        public var clientPID: Int32
        public var time: Date
    }

    public let path: String
    /// How the peer answers freezes; may change between backups.
    public var behaviour: Behaviour {
        get { lock.lock(); defer { lock.unlock() }; return currentBehaviour }
        set { lock.lock(); currentBehaviour = newValue; lock.unlock() }
    }
    /// Filesystems for guest-get-fsinfo as (mountpoint, type); nil: the command is not offered.
    public let filesystems: [(String, String)]?
    /// Called before the freeze is answered (the guest is frozen from here).
    public var onFreeze: (() -> Void)?
    /// Called before the thaw is answered (the guest is still frozen until it returns).
    public var onThaw: (() -> Void)?

    private let lock = NSLock()
    private var currentBehaviour: Behaviour
    private var entries: [Entry] = []
    private var isFrozen = false
    private var listener: Int32 = -1
    private var stopped = false

    public init(path: String, behaviour: Behaviour = .normal, filesystems: [(String, String)]? = [("/", "ext4"), ("/boot", "vfat")]) throws {
        self.path = path
        currentBehaviour = behaviour
        self.filesystems = filesystems
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 8) == 0 else {
            throw TestMonitor.Failure(description: "guest agent peer: cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    /// Stops listening and removes the socket file; idempotent (a later call must not remove
    /// the socket of a newer peer at the same path).
    public func stop() {
        lock.lock()
        guard !stopped else { lock.unlock(); return }
        let fd = listener
        stopped = true
        listener = -1
        lock.unlock()
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }
        unlink(path)
    }

    public var log: [Entry] { lock.lock(); defer { lock.unlock() }; return entries }
    public var commands: [String] { log.map(\.command) }
    public var frozen: Bool { lock.lock(); defer { lock.unlock() }; return isFrozen }

    private func acceptLoop() {
        while true {
            lock.lock(); let fd = listener; lock.unlock()
            guard fd >= 0 else { return }
            let client = accept(fd, nil, nil)
            if client < 0 { if errno == EINTR { continue } else { return } }
            Thread { [self] in serve(client) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length)
        var buffer: [UInt8] = []
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            for byte in chunk[0..<count] {
                if byte == 0xFF { buffer.removeAll(); continue }  // the client's reset
                guard byte == 0x0A else { buffer.append(byte); continue }
                let line = buffer
                buffer.removeAll()
                guard let request = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let command = request["execute"] as? String else { continue }
                lock.lock(); entries.append(Entry(command: command, clientPID: credentials.0, time: Date())); lock.unlock()
                guard let reply = answer(command, request["arguments"] as? [String: Any]) else {
                    // A hung freeze: stay silent until the client goes away.
                    while recv(fd, &chunk, chunk.count, 0) > 0 {}
                    return
                }
                _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// The reply bytes for one command; nil to hang.
    private func answer(_ command: String, _ arguments: [String: Any]?) -> [UInt8]? {
        func reply(_ value: Any) -> [UInt8] {
            (try? JSONSerialization.data(withJSONObject: ["return": value], options: [.fragmentsAllowed])).map { [UInt8]($0) + [0x0A] } ?? []
        }
        func error(_ text: String, _ errorClass: String = "GenericError") -> [UInt8] {
            [UInt8]((try? JSONSerialization.data(withJSONObject: ["error": ["class": errorClass, "desc": text]])) ?? Data()) + [0x0A]
        }
        switch command {
        case "guest-sync-delimited":
            return [0xFF] + reply(arguments?["id"] ?? 0)
        case "guest-sync":
            return reply(arguments?["id"] ?? 0)
        case "guest-ping":
            return reply([String: Any]())
        case "guest-fsfreeze-status":
            return reply(frozen ? "frozen" : "thawed")
        case "guest-get-fsinfo":
            guard let filesystems else { return error("The command guest-get-fsinfo has not been found", "CommandNotFound") }
            return reply(filesystems.map { ["mountpoint": $0.0, "type": $0.1, "name": "vda1", "disk": [[String: Any]]()] as [String: Any] })
        case "guest-fsfreeze-freeze":
            switch behaviour {
            case .failFreeze:
                return error("failed to freeze /: Device or resource busy")
            case .hangOnFreeze:
                lock.lock(); isFrozen = true; lock.unlock()
                onFreeze?()
                return nil
            case .normal:
                lock.lock(); isFrozen = true; lock.unlock()
                onFreeze?()
                return reply(filesystems?.count ?? 1)
            }
        case "guest-fsfreeze-thaw":
            let wasFrozen = frozen
            onThaw?()
            lock.lock(); isFrozen = false; lock.unlock()
            return reply(wasFrozen ? (filesystems?.count ?? 1) : 0)
        default:
            return error("The command \(command) has not been found", "CommandNotFound")
        }
    }
}
