import Foundation

/// The time the server schedules by.
///
/// In production it is the wall clock. In test mode it can run faster: scheduled time is
/// `anchor + (now − anchor) × scale`, a pure function of the wall clock, so a server stopped
/// and started again with the same anchor and scale sees continuous time, downtime included.
public struct ServerClock: Sendable {
    public let anchor: Date
    public let scale: Double

    public static let wall = ServerClock(anchor: Date(timeIntervalSince1970: 0), scale: 1)

    public init(anchor: Date, scale: Double) {
        self.anchor = anchor
        self.scale = scale
    }

    public func now(_ wall: Date = Date()) -> Date {
        scale == 1 ? wall : anchor.addingTimeInterval(wall.timeIntervalSince(anchor) * scale)
    }
}
