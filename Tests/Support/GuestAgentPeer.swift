import Foundation

/// A stand-in for qemu-ga, speaking its protocol on a unix socket as Debian's qemu-ga 7.2
/// does behind QEMU's chardev (see GuestAgentClient for the protocol):
/// - JSON lines; a 0xFF byte from the client drops the partial input and is answered with
///   the agent's parse error line; guest-sync-delimited answers with 0xFF first;
/// - one client at a time: the next connection is served once the current one closes;
/// - a reply the client went away before reading is sent to the next client first;
/// - while frozen, every command but the six the real agent allows is refused as disabled;
/// - guest-info lists the commands with `enabled`.
/// It freezes nothing: it records what it was asked, in order, and keeps a "frozen" state,
/// so a test can check that the freeze came before the snapshot and the thaw after it.
///
/// Never point dpm at the machine's own qemu-ga in tests: a freeze would freeze this machine.
public final class GuestAgentPeer {
    public enum Behaviour: Sendable {
        /// Answers every command.
        case normal
        /// Takes the freeze (state "frozen") but never answers it, until that client goes away.
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
    /// Commands blocked as by qemu-ga's --block-rpcs: listed by guest-info as not enabled, refused.
    public let blocked: Set<String>
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
    /// Reply bytes no client has received yet (the last one went away first).
    private var unsent: [UInt8] = []

    /// Every command the peer knows, as guest-info lists them.
    static let known = ["guest-sync-delimited", "guest-sync", "guest-ping", "guest-info", "guest-fsfreeze-status", "guest-get-fsinfo",
                        "guest-fsfreeze-freeze", "guest-fsfreeze-thaw"]
    /// The commands qemu-ga still runs while frozen.
    static let allowedWhileFrozen: Set<String> = ["guest-ping", "guest-info", "guest-sync", "guest-sync-delimited",
                                                  "guest-fsfreeze-status", "guest-fsfreeze-thaw"]

    public init(path: String, behaviour: Behaviour = .normal, filesystems: [(String, String)]? = [("/", "ext4"), ("/boot", "vfat")],
                blocked: Set<String> = []) throws {
        self.path = path
        currentBehaviour = behaviour
        self.filesystems = filesystems
        self.blocked = blocked
        listener = try TestUnixSocket.listen(path, backlog: 8)
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
            serve(client)
        }
    }

    /// Sends `bytes` after whatever an earlier client left unread; keeps them for the next
    /// client when this one has gone away.
    private func deliver(_ bytes: [UInt8], to fd: Int32) {
        lock.lock()
        let all = unsent + bytes
        unsent = []
        lock.unlock()
        var offset = 0
        while offset < all.count {
            let sent = all[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { break }
            offset += sent
        }
        if offset < all.count {
            lock.lock(); unsent = Array(all[offset...]) + unsent; lock.unlock()
        }
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length)
        deliver([], to: fd)
        var buffer: [UInt8] = []
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            for byte in chunk[0..<count] {
                if byte == 0xFF {
                    // The client's reset: qemu-ga's parser drops its input and reports the stray byte.
                    buffer.removeAll()
                    deliver(GuestAgentPeer.error("JSON parse error, stray '\u{FFFD}'"), to: fd)
                    continue
                }
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
                deliver(reply, to: fd)
            }
        }
    }

    static func error(_ text: String, _ errorClass: String = "GenericError") -> [UInt8] {
        [UInt8]((try? JSONSerialization.data(withJSONObject: ["error": ["class": errorClass, "desc": text]])) ?? Data()) + [0x0A]
    }

    /// The reply bytes for one command; nil to hang.
    private func answer(_ command: String, _ arguments: [String: Any]?) -> [UInt8]? {
        func reply(_ value: Any) -> [UInt8] {
            (try? JSONSerialization.data(withJSONObject: ["return": value], options: [.fragmentsAllowed])).map { [UInt8]($0) + [0x0A] } ?? []
        }
        func error(_ text: String, _ errorClass: String = "GenericError") -> [UInt8] { GuestAgentPeer.error(text, errorClass) }
        if blocked.contains(command) || (frozen && GuestAgentPeer.known.contains(command) && !GuestAgentPeer.allowedWhileFrozen.contains(command)) {
            let why = blocked.contains(command) ? "" : ": the agent is in frozen state"
            return error("Command \(command) has been disabled\(why)", "CommandNotFound")
        }
        switch command {
        case "guest-sync-delimited":
            return [0xFF] + reply(arguments?["id"] ?? 0)
        case "guest-sync":
            return reply(arguments?["id"] ?? 0)
        case "guest-ping":
            return reply([String: Any]())
        case "guest-info":
            let frozen = self.frozen
            let commands = GuestAgentPeer.known.filter { $0 != "guest-get-fsinfo" || filesystems != nil }.map { name -> [String: Any] in
                ["name": name, "enabled": !blocked.contains(name) && (!frozen || GuestAgentPeer.allowedWhileFrozen.contains(name)),
                 "success-response": true]
            }
            return reply(["version": "7.2.0 (dpm test peer)", "supported_commands": commands] as [String: Any])
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
