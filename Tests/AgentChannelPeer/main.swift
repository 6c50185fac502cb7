// A remote agent in its own process, for AgentChannelTests: it joins (or enrolls with) a
// server over TCP and serves the server's jobs until the server closes the session.
//
//   agent-channel-peer --identity DIR --name NAME --connect HOST:PORT [--enroll CODE]
//                      [--tls-role client|server] [--keep-alive SECONDS]
//
// Jobs it serves (JSON requests):
//   {"op": "send-chunks", "count": N, "size": BYTES, "seed": S, "changed": [i, …]}
//       offers N generated chunks through a ChunkSender (chunk i differs when i is in
//       `changed`), then replies with the receiver's counters and ends the job.
//   {"op": "wait-for-cancel"}  waits until the server cancels the job, then replies
//       {"cancelled": REASON} on a new job.
// Prints one JSON line {"event": "joined", …} to stdout once admitted; on failure prints the
// error to stderr and exits 1 (a refusal's message is what the tests check).
import AgentChannel
import Foundation

struct Arguments {
    var identity = ""
    var name = ""
    var host = "127.0.0.1"
    var port: UInt16 = 0
    var code: String?
    var tlsRole = TLSRole.client
    var keepAlive: Double?

    init(_ list: [String]) throws {
        var iterator = list.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { throw ChannelError(.invalid, "\(flag) needs a value") }
            switch flag {
            case "--identity": identity = value
            case "--name": name = value
            case "--connect":
                guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]) else {
                    throw ChannelError(.invalid, "--connect takes HOST:PORT")
                }
                host = String(value[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                self.port = port
            case "--enroll": code = value
            case "--tls-role": tlsRole = TLSRole(rawValue: value) ?? .client
            case "--keep-alive": keepAlive = Double(value)
            default: throw ChannelError(.invalid, "unknown option \(flag)")
            }
        }
    }
}

struct Request: Codable {
    var op: String
    var count: Int?
    var size: Int?
    var seed: UInt64?
    var changed: [Int]?
}

/// Deterministic chunk content: a linear congruential stream keyed by seed, index and variant,
/// eight bytes per step.
func chunk(_ index: Int, size: Int, seed: UInt64, variant: UInt64) -> [UInt8] {
    var state = seed &* 0x5851_F42D_4C95_7F2D &+ UInt64(index) &* 0x1405_7B7E_F767_814F &+ variant &+ 1
    var bytes = [UInt8](repeating: 0, count: size)
    bytes.withUnsafeMutableBytes { raw in
        for offset in stride(from: 0, to: size, by: 8) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            withUnsafeBytes(of: state) { word in
                for byte in 0..<min(8, size - offset) { raw[offset + byte] = word[byte] }
            }
        }
    }
    return bytes
}

func serve(_ session: ChannelSession) throws {
    while true {
        let (job, frame) = try session.acceptJob()
        let request = try frame.decode(Request.self)
        switch request.op {
        case "send-chunks":
            let sender = ChunkSender(job: job)
            let changed = Set(request.changed ?? [])
            for index in 0..<(request.count ?? 0) {
                try sender.add(chunk(index, size: request.size ?? 4096, seed: request.seed ?? 0, variant: changed.contains(index) ? 1 : 0))
            }
            let counters = try sender.finish()
            try job.send(.reply, json: counters)
            try job.end()
        case "wait-for-cancel":
            let cancelled = DispatchSemaphore(value: 0)
            job.onCancel { _ in cancelled.signal() }
            cancelled.wait()
            let reply = try session.openJob(request: ["cancelled": job.cancellationReason ?? ""])
            try reply.end()
        default:
            job.fail(ChannelError(.invalid, "agent-channel-peer does not know the request \(request.op)"))
        }
    }
}

do {
    let arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
    let identity = try ChannelIdentity.loadOrCreate(folder: arguments.identity, name: arguments.name)
    var options = SessionOptions()
    options.handshakeTimeout = 20
    if let keepAlive = arguments.keepAlive {
        options.keepAliveInterval = keepAlive
        options.keepAliveTimeout = keepAlive * 10
    }
    let trust: AgentHandshake.Trust
    if let code = arguments.code {
        trust = .enroll(try EnrollmentCode(parsing: code))
    } else if let pinned = try PinnedServer.load(folder: arguments.identity) {
        trust = .pinned(pinned)
    } else {
        throw ChannelError(.invalid, "agent \(arguments.name) is not enrolled: pass --enroll CODE")
    }
    let socket = try TCPSocket.connect(host: arguments.host, port: arguments.port, timeout: 20)
    let joined = try AgentHandshake(identity: identity, service: "guest-agent", options: options)
        .join(socket, tlsRole: arguments.tlsRole, trust: trust)
    if joined.enrolledNow { try joined.server.save(folder: arguments.identity) }
    print("{\"event\": \"joined\", \"server\": \"\(joined.server.server)\", \"enrolled\": \(joined.enrolledNow), \"pid\": \(getpid())}")
    fflush(stdout)
    do {
        try serve(joined.session)
    } catch let error as ChannelError where error.code == .closed {
        exit(0)  // the server said goodbye
    }
} catch {
    FileHandle.standardError.write(Data("agent-channel-peer: \(error)\n".utf8))
    exit(1)
}
