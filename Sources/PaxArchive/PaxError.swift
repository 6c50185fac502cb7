/// A damaged or unreadable pax archive. `offset` is the byte of the archive stream where
/// the problem was found.
public struct PaxError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var offset: UInt64

    public init(_ message: String, offset: UInt64) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(message) (at byte \(offset) of the archive)" }
}
