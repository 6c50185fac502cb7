import Foundation

/// Durations written the way administrators write them: `90s`, `15m`, `24h`, `14d`, or a
/// plain number of seconds.
public enum Duration {
    public static func parse(_ text: String, what: String) throws -> TimeInterval {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            if let value = Double(trimmed.dropLast()), value >= 0 { return value * factor }
        }
        if let value = Double(trimmed), value >= 0 { return value }
        throw HostError(.usage, "\(what) '\(text)' is not a duration; write for example 90s, 15m, 24h or 14d")
    }
}
