import Foundation

/// Options every kind of recovery takes (behaviour 10): a bandwidth limit and a completion
/// email.
public struct RecoveryOptions {
    public var throttle: Throttle?
    /// Where to send the completion email (through the smtp.* settings).
    public var notify: String?

    public init(throttle: Throttle? = nil, notify: String? = nil) {
        self.throttle = throttle
        self.notify = notify
    }
}
