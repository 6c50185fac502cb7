import Foundation

/// A bandwidth limit for recoveries (behaviour 10): a rate, optionally only during some hours.
///
/// Written `RATE[@HH:MM-HH:MM,…]`, e.g. `50M` (50 MiB/s always) or `10M@08:00-18:00` (only
/// during working hours). Rates take K, M, G suffixes (binary) and mean bytes per second.
/// `wait(for:)` paces a stream of bytes with a token bucket holding at most a quarter second
/// of credit, so the measured rate stays close to the limit over any stretch of a few seconds.
public final class Throttle: @unchecked Sendable {
    public let bytesPerSecond: Double
    /// Windows in minutes after midnight (start, end); the end may wrap past midnight.
    public let windows: [(start: Int, end: Int)]
    let calendar: Calendar
    private let lock = NSLock()
    private var credit: Double = 0
    private var last = Date()

    public init(_ text: String, timeZone: TimeZone = .current) throws {
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        guard let rate = parts.first, let bytes = try? Throttle.rate(rate), bytes > 0 else {
            throw HostError(.usage, "--throttle '\(text)' must be RATE[@HH:MM-HH:MM,…], for example 50M or 10M@08:00-18:00")
        }
        bytesPerSecond = bytes
        var windows: [(Int, Int)] = []
        if parts.count == 2 {
            for window in parts[1].split(separator: ",") {
                let ends = window.split(separator: "-").map(String.init)
                guard ends.count == 2 else { throw HostError(.usage, "--throttle hours '\(window)' must be HH:MM-HH:MM") }
                windows.append((try ClockTime.parse(ends[0], what: "--throttle"), try ClockTime.parse(ends[1], what: "--throttle")))
            }
        }
        self.windows = windows
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        self.calendar = calendar
    }

    static func rate(_ text: String) throws -> Double {
        let upper = text.uppercased().replacingOccurrences(of: "/S", with: "").replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        let factors: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let last = upper.last, let factor = factors[last], let value = Double(upper.dropLast()) { return value * factor }
        guard let value = Double(upper) else { throw HostError(.usage, "'\(text)' is not a rate") }
        return value
    }

    /// Whether the limit applies at `date`.
    public func applies(at date: Date) -> Bool {
        guard !windows.isEmpty else { return true }
        let minute = calendar.component(.hour, from: date) * 60 + calendar.component(.minute, from: date)
        return windows.contains { window in
            window.start <= window.end ? (window.start..<window.end).contains(minute) : (minute >= window.start || minute < window.end)
        }
    }

    /// Blocks until `bytes` more may pass.
    public func wait(for bytes: Int) {
        lock.lock()
        let now = Date()
        guard applies(at: now) else {
            credit = 0
            last = now
            lock.unlock()
            return
        }
        credit = min(bytesPerSecond / 4, credit + now.timeIntervalSince(last) * bytesPerSecond) - Double(bytes)
        last = now
        let debt = credit < 0 ? -credit / bytesPerSecond : 0
        lock.unlock()
        if debt > 0 { Thread.sleep(forTimeInterval: debt) }
    }
}
