import Foundation

/// One frame of the agent channel, the unit of everything sent inside TLS.
///
/// ## Wire format (all integers unsigned big-endian)
/// ```
/// offset  size  field
/// 0       4     payload length N; the receiver refuses N above its limit (announced in the
///               hello and welcome, default 8 MiB) before it allocates anything
/// 4       1     type (FrameType)
/// 5       4     job id; 0 is the session itself. Jobs the dpm server opens have odd ids,
///               jobs the agent opens even ids, each side counting up from its first.
/// 9       N     payload
/// ```
/// JSON payloads are UTF-8 JSON objects with snake_case keys (see `WireJSON`).
public struct Frame: Sendable {
    public static let headerSize = 9

    public var type: FrameType
    public var job: UInt32
    public var payload: [UInt8]

    public init(_ type: FrameType, job: UInt32 = 0, payload: [UInt8] = []) {
        self.type = type
        self.job = job
        self.payload = payload
    }

    /// A frame whose payload is `value` as JSON.
    public init<T: Encodable>(_ type: FrameType, job: UInt32 = 0, json value: T) throws {
        self.init(type, job: job, payload: try WireJSON.encode(value))
    }

    /// Decodes a JSON payload.
    public func decode<T: Decodable>(_ kind: T.Type) throws -> T {
        try WireJSON.decode(kind, from: payload, what: "the \(type) frame of job \(job)")
    }

    var header: [UInt8] {
        BigEndian.bytes(UInt32(payload.count)) + [type.rawValue] + BigEndian.bytes(job)
    }
}

/// The frame types. A receiver refuses a type it does not know (protocol version 1 has no
/// optional frames).
public enum FrameType: UInt8, Sendable, CustomStringConvertible {
    /// Job 0, agent → server, the first frame after the TLS handshake (JSON `AgentHello`).
    case hello = 0x01
    /// Job 0, server → agent: the agent is admitted (JSON `ServerWelcome`).
    case welcome = 0x02
    /// A JSON request; the first frame on a new job id opens that job.
    case request = 0x03
    /// A JSON reply within a job.
    case reply = 0x04
    /// Opaque binary data within a job.
    case data = 0x05
    /// JSON `WireError` {code, message}: on job 0 the session ends, on a job that job fails.
    case error = 0x06
    /// Job 0, 8 bytes: sent by either side after an idle keep-alive interval.
    case ping = 0x07
    /// Job 0: the 8 bytes of the ping it answers.
    case pong = 0x08
    /// JSON {"reason"}: the sender cancels the job; neither side sends more on it.
    case cancel = 0x09
    /// The sender has finished with the job (payload empty or JSON); the job is closed.
    case end = 0x0A
    /// Job 0, JSON {"reason"}: an orderly end of the session.
    case goodbye = 0x0B
    /// Chunk negotiation (see `ChunkOffer`): digests the sender offers.
    case offer = 0x10
    /// Chunk negotiation: which offered digests the receiver lacks.
    case wanted = 0x11
    /// Chunk negotiation: 32-byte digest, then the chunk's content.
    case chunk = 0x12
    /// Chunk negotiation, JSON: the sender has offered and sent everything.
    case offersDone = 0x13
    /// Chunk negotiation, JSON `ChunkTransferCounters`: the receiver has stored every chunk it asked for.
    case chunksReceived = 0x14

    public var description: String {
        switch self {
        case .hello: return "hello"
        case .welcome: return "welcome"
        case .request: return "request"
        case .reply: return "reply"
        case .data: return "data"
        case .error: return "error"
        case .ping: return "ping"
        case .pong: return "pong"
        case .cancel: return "cancel"
        case .end: return "end"
        case .goodbye: return "goodbye"
        case .offer: return "offer"
        case .wanted: return "wanted"
        case .chunk: return "chunk"
        case .offersDone: return "offers-done"
        case .chunksReceived: return "chunks-received"
        }
    }
}

/// The payload of an `error` frame.
struct WireError: Codable {
    var code: String
    var message: String
    /// During enrollment: the server's proof of the code, so the agent can tell a genuine
    /// refusal from one forged by a man in the middle.
    var enrollmentProof: String?

    init(_ error: ChannelError, enrollmentProof: String? = nil) {
        code = error.code.rawValue
        message = error.message
        self.enrollmentProof = enrollmentProof
    }

    /// The error as the receiving side throws it.
    func channelError(prefix: String) -> ChannelError {
        ChannelError(ChannelError.Code(rawValue: code) ?? .failed, prefix + message, remote: true)
    }
}

/// The payload of `cancel` and `goodbye` frames.
struct WireReason: Codable {
    var reason: String
}
