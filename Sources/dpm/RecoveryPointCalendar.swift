import Foundation

/// Month calendars (like cal(1)) with the days that have recovery points marked `*`.
enum RecoveryPointCalendar {
    static func render(_ times: [Date], timeZone: TimeZone = .current) -> String {
        guard !times.isEmpty else { return "no recovery points" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        calendar.firstWeekday = 2
        var counts: [DateComponents: Int] = [:]
        for time in times {
            counts[calendar.dateComponents([.year, .month, .day], from: time), default: 0] += 1
        }
        let months = Set(counts.keys.map { DateComponents(year: $0.year, month: $0.month) })
            .sorted { ($0.year!, $0.month!) < ($1.year!, $1.month!) }
        var text = ""
        let names = DateFormatter().standaloneMonthSymbols ?? []
        for month in months {
            guard let first = calendar.date(from: DateComponents(year: month.year, month: month.month, day: 1)),
                  let days = calendar.range(of: .day, in: .month, for: first) else { continue }
            let title = "\(names.indices.contains(month.month! - 1) ? names[month.month! - 1] : "\(month.month!)") \(month.year!)"
            text += String(repeating: " ", count: max(0, (28 - title.count) / 2)) + title + "\n"
            text += " Mo  Tu  We  Th  Fr  Sa  Su\n"
            let weekday = (calendar.component(.weekday, from: first) + 5) % 7
            var line = String(repeating: "    ", count: weekday)
            var column = weekday
            for day in days {
                let count = counts[DateComponents(year: month.year, month: month.month, day: day)] ?? 0
                line += String(format: "%3d", day) + (count > 0 ? "*" : " ")
                column += 1
                if column == 7 {
                    text += line + "\n"
                    line = ""
                    column = 0
                }
            }
            if !line.isEmpty { text += line + "\n" }
            text += "\n"
        }
        return text + "* = at least one recovery point (\(times.count) in all)"
    }
}
