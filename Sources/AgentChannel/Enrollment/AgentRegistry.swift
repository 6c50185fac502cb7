import Foundation

/// An agent the server has enrolled: its name and the key it pinned.
public struct EnrolledAgent: Codable, Sendable, Equatable {
    public var name: String
    public var pin: KeyPin
    public var enrolledAt: Date
    /// Set once the agent is revoked; a revoked agent is refused until it is enrolled again.
    public var revokedAt: Date?

    public init(name: String, pin: KeyPin, enrolledAt: Date, revokedAt: Date? = nil) {
        self.name = name
        self.pin = pin
        self.enrolledAt = enrolledAt
        self.revokedAt = revokedAt
    }
}

/// An enrollment code as the server keeps it: never the code, only its id and proof key.
public struct EnrollmentCodeRecord: Codable, Sendable, Equatable {
    public var id: String
    /// The proof key, 64 hex digits; as secret as the code.
    public var key: String
    public var createdAt: Date
    public var expiresAt: Date
    public var usedAt: Date?
    /// The agent name that used it (whether or not the enrollment then succeeded).
    public var usedBy: String?
    /// "enrolled", or why the enrollment failed after the code was spent.
    public var outcome: String?
}

/// What redeeming a code found.
public enum CodeRedemption: Sendable, Equatable {
    /// The code was valid and is now spent: no other caller will ever get it.
    case redeemed(EnrollmentCodeRecord)
    case alreadyUsed(EnrollmentCodeRecord)
    case expired(EnrollmentCodeRecord)
    case unknown
}

/// The server's table of enrolled agents and outstanding enrollment codes.
///
/// Contract for implementations (the file below; later the SQLite catalog):
/// - every method is atomic with respect to other processes and threads using the same store;
/// - `redeemCode` hands a given code out as `.redeemed` at most once, ever;
/// - names are compared exactly (case matters);
/// - errors are `ChannelError` naming the store and the fix.
public protocol AgentRegistry: AnyObject, Sendable {
    /// The record of `name`, revoked or not; nil when the name was never enrolled.
    func agent(named name: String) throws -> EnrolledAgent?
    /// Every record, revoked ones included, sorted by name.
    func agents() throws -> [EnrolledAgent]
    /// Adds the record of `agent.name`, or replaces it (a re-enrollment).
    func save(_ agent: EnrolledAgent) throws
    /// Marks `name` revoked; `.invalid` when it was never enrolled.
    @discardableResult
    func revoke(_ name: String, at date: Date) throws -> EnrolledAgent
    /// Stores a newly issued code.
    func addCode(_ record: EnrollmentCodeRecord) throws
    /// Looks a code up without spending it.
    func code(id: String) throws -> EnrollmentCodeRecord?
    /// Spends the code `id` for `agentName` if it is unused and unexpired at `date`.
    func redeemCode(id: String, by agentName: String, at date: Date) throws -> CodeRedemption
    /// Records how the enrollment that spent code `id` ended.
    func recordOutcome(codeID id: String, _ outcome: String) throws
}

extension AgentRegistry {
    /// Issues a new code valid for `validity` seconds from `now` and stores it.
    /// - Returns: the code to show the operator (the registry keeps only its id and key).
    public func issueCode(validFor validity: TimeInterval = 3600, now: Date = Date()) throws -> EnrollmentCode {
        let code = try EnrollmentCode.generate()
        try addCode(EnrollmentCodeRecord(id: code.id, key: EnrollmentProof.hex(code.key), createdAt: now, expiresAt: now.addingTimeInterval(validity)))
        return code
    }

    /// The record of `name` when it is enrolled and not revoked.
    public func activeAgent(named name: String) throws -> EnrolledAgent? {
        guard let agent = try agent(named: name), agent.revokedAt == nil else { return nil }
        return agent
    }
}
