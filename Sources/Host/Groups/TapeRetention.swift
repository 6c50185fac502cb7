import Foundation

/// How long tape copies are kept: 1–99 years, 1–11 months or 1–4 weeks (behaviour 7).
public struct TapeRetention: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Unit: String, Codable, Sendable { case weeks, months, years }

    public var amount: Int
    public var unit: Unit

    public init(amount: Int, unit: Unit) {
        self.amount = amount
        self.unit = unit
    }

    /// Parses `7y`, `6m`, `3w` (or `7 years` …), refusing values outside the ranges.
    public static func parse(_ text: String) throws -> TapeRetention {
        let trimmed = text.lowercased().replacingOccurrences(of: " ", with: "")
        let digits = trimmed.prefix { $0.isNumber }
        let suffix = trimmed.dropFirst(digits.count)
        guard let amount = Int(digits) else {
            throw HostError(.usage, "tape retention '\(text)' must be a number of years (1-99y), months (1-11m) or weeks (1-4w)")
        }
        let unit: Unit
        switch suffix {
        case "y", "year", "years": unit = .years
        case "m", "month", "months": unit = .months
        case "w", "week", "weeks": unit = .weeks
        default: throw HostError(.usage, "tape retention '\(text)' must end in y, m or w (for example 7y, 6m, 3w)")
        }
        let retention = TapeRetention(amount: amount, unit: unit)
        guard retention.range.contains(amount) else {
            throw HostError(.usage, "rule tape-retention-range: tape retention of \(amount) \(unit.rawValue) is outside "
                + "\(retention.range.lowerBound)-\(retention.range.upperBound) \(unit.rawValue)")
        }
        return retention
    }

    public var range: ClosedRange<Int> {
        switch unit {
        case .years: return 1...99
        case .months: return 1...11
        case .weeks: return 1...4
        }
    }

    /// The frequencies behaviour 7's table allows for this range.
    public var allowedFrequencies: [TapeFrequency] {
        switch unit {
        case .years: return TapeFrequency.allCases
        case .months: return [.daily, .weekly, .biweekly, .monthly]
        case .weeks: return [.daily, .weekly]
        }
    }

    public var days: Int {
        switch unit {
        case .years: return amount * 365 + amount / 4
        case .months: return amount * 31
        case .weeks: return amount * 7
        }
    }

    public var description: String { "\(amount)\(unit.rawValue.prefix(1))" }
}

public enum TapeFrequency: String, Codable, Sendable, CaseIterable {
    case daily, weekly, biweekly, monthly, quarterly
    case halfYearly = "half-yearly"
    case yearly
}
