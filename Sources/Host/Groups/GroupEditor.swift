import Foundation

/// Applies the options of `dpm group create|modify` to a group and checks every rule of
/// behaviour 7. A violation is a usage error (exit 2) whose message starts with the rule's
/// name, e.g. "rule sync-frequency: …".
public struct GroupEditor {
    /// The synchronisation frequencies DPM offers, in minutes.
    public static let syncFrequencies = [15, 30, 45, 60, 120, 240, 360, 720, 1440]
    /// The longest short-term retention, in days.
    public static let maxShortTermRetentionDays = 448
    /// The longest online retention, in days.
    public static let maxOnlineRetentionDays = 3360
    /// Online copies a day, and online recovery points a data source may have (Azure Backup's limits).
    public static let maxOnlineCopiesPerDay = 2
    public static let maxOnlinePoints = 9999

    /// The option names the editor understands, with their placeholders, for help texts.
    public static let options: [(name: String, value: String, help: String)] = [
        ("members", "A,B", "data sources (VM names or ids) in the group"),
        ("colocate", "on|off", "share one replica store and tape among the members"),
        ("retention", "DAYS", "short-term retention on disk, e.g. 14d (1-448 days)"),
        ("sync", "MINUTES", "incremental sync every 15,30,45,60,120,240,360,720,1440 minutes, or just-before-rp"),
        ("rp-times", "HH:MM,…", "recovery point times (with just-before-rp: an express full at each)"),
        ("express-full-times", "HH:MM,…", "express full backup times (empty to turn off)"),
        ("consistency-check", "WHEN", "only-if-inconsistent, or daily@HH:MM"),
        ("replica", "METHOD", "now, at:YYYY-MM-DDTHH:MM, off-peak, or offline:DIR"),
        ("online", "on|off", "copy recovery points to the online tier"),
        ("online-retention", "DAYS", "online retention, at most 3360 days"),
        ("online-time", "HH:MM", "time of the daily online copy"),
        ("online-times", "HH:MM[,HH:MM]", "times of the online copies, at most two a day"),
        ("online-weeks", "N", "keep the first online copy of each week N weeks"),
        ("online-months", "N", "keep the first online copy of each month N months"),
        ("online-years", "N", "keep the first online copy of each year N years"),
        ("tape", "on|off", "long-term protection on tape"),
        ("tape-retention", "N{y|m|w}", "tape retention: 1-99 years, 1-11 months or 1-4 weeks"),
        ("tape-frequency", "FREQ", "daily, weekly, biweekly, monthly, quarterly, half-yearly or yearly"),
        ("tape-time", "HH:MM", "time of tape copies on their days"),
        ("tape-pool", "POOL", "the media pool of the group's tapes (default: the group's name)"),
        ("tape-library", "NAME", "the tape library to use (default: the first)"),
        ("tape-drives", "N,…", "the library's drives to use (default: any)"),
        ("compression", "on|off", "compress tape and online copies"),
        ("encryption", "on|off", "encrypt tape and online copies"),
        ("store-allocation", "SIZE", "disk space allocated on the store (plan review), e.g. 500G"),
    ]

    /// Looks up whether a data source exists (catalog or providers), for the member rule.
    public var dataSourceExists: (String) -> Bool
    /// The group a data source already belongs to, if any.
    public var groupOf: (String) -> String?
    /// Whether a tier provider is usable, or why not.
    public var tierProblem: (String) -> String?

    public init(dataSourceExists: @escaping (String) -> Bool, groupOf: @escaping (String) -> String?, tierProblem: @escaping (String) -> String?) {
        self.dataSourceExists = dataSourceExists
        self.groupOf = groupOf
        self.tierProblem = tierProblem
    }

    static func rule(_ name: String, _ message: String) -> HostError {
        HostError(.usage, "rule \(name): \(message)")
    }

    public static func flag(_ value: String, _ option: String) throws -> Bool {
        switch value.lowercased() {
        case "on", "yes", "true", "1": return true
        case "off", "no", "false", "0": return false
        default: throw HostError(.usage, "--\(option) takes on or off, not '\(value)'")
        }
    }

    static func times(_ value: String, _ option: String) throws -> [Int] {
        let parts = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return Array(Set(try parts.map { try ClockTime.parse($0, what: "--\(option)") })).sorted()
    }

    static func count(_ value: String, _ option: String) throws -> Int? {
        guard let number = Int(value), number >= 0 else { throw HostError(.usage, "--\(option) takes a whole number, not '\(value)'") }
        return number == 0 ? nil : number
    }

    public static func days(_ value: String, _ option: String) throws -> Int {
        let text = value.lowercased().hasSuffix("d") ? String(value.dropLast()) : value
        guard let days = Int(text), days > 0 else { throw HostError(.usage, "--\(option) takes a number of days, like 14 or 14d, not '\(value)'") }
        return days
    }

    /// Parses sizes such as 500G, 2T, 750M, 1048576.
    public static func size(_ value: String) throws -> UInt64 {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50]
        var text = value.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        var factor: UInt64 = 1
        if let last = text.last, let unit = units[last] {
            factor = unit
            text.removeLast()
        }
        guard let number = Double(text), number > 0 else { throw HostError(.usage, "'\(value)' is not a size; write for example 500G or 2T") }
        return UInt64(number * Double(factor))
    }

    /// Returns `group` with `options` applied, after checking every rule.
    public func apply(_ options: [String: String], to original: ProtectionGroup) throws -> ProtectionGroup {
        var group = original
        for (key, value) in options {
            switch key {
            case "members":
                group.members = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            case "colocate": group.colocate = try Self.flag(value, key)
            case "retention": group.retentionDays = try Self.days(value, key)
            case "sync":
                if value == "just-before-rp" {
                    group.syncMinutes = nil
                } else {
                    let minutes = Int(value.lowercased().hasSuffix("m") ? String(value.dropLast()) : value)
                    guard let minutes, Self.syncFrequencies.contains(minutes) else {
                        throw Self.rule("sync-frequency", "--sync must be one of \(Self.syncFrequencies.map(String.init).joined(separator: ", ")) minutes or just-before-rp, not '\(value)'")
                    }
                    group.syncMinutes = minutes
                }
            case "rp-times": group.recoveryPointTimes = try Self.times(value, key)
            case "express-full-times": group.expressFullTimes = try Self.times(value, key)
            case "consistency-check":
                if value == "only-if-inconsistent" {
                    group.consistencyCheck = .onlyIfInconsistent
                } else if value.hasPrefix("daily@") {
                    group.consistencyCheck = .daily(minuteOfDay: try ClockTime.parse(String(value.dropFirst(6)), what: "--consistency-check"))
                } else {
                    throw Self.rule("consistency-check", "--consistency-check is only-if-inconsistent or daily@HH:MM, not '\(value)'")
                }
            case "replica": group.replicaCreation = try Self.replica(value)
            case "online": group.online = try Self.flag(value, key)
            case "online-retention": group.onlineRetentionDays = try Self.days(value, key)
            case "online-time": group.onlineTime = try ClockTime.parse(value, what: "--online-time"); group.onlineTimes = nil
            case "online-times":
                let times = try value.split(separator: ",").map { try ClockTime.parse(String($0), what: "--online-times") }
                guard (1...Self.maxOnlineCopiesPerDay).contains(times.count), Set(times).count == times.count else {
                    throw Self.rule("online-copies-per-day", "--online-times takes one or two different times (at most \(Self.maxOnlineCopiesPerDay) online copies a day), not '\(value)'")
                }
                group.onlineTimes = times.sorted()
            case "online-weeks": group.onlineWeeks = try Self.count(value, key)
            case "online-months": group.onlineMonths = try Self.count(value, key)
            case "online-years": group.onlineYears = try Self.count(value, key)
            case "tape": group.tape = try Self.flag(value, key)
            case "tape-retention": group.tapeRetention = try TapeRetention.parse(value)
            case "tape-frequency":
                guard let frequency = TapeFrequency(rawValue: value) else {
                    throw Self.rule("tape-frequency", "--tape-frequency must be one of \(TapeFrequency.allCases.map(\.rawValue).joined(separator: ", ")), not '\(value)'")
                }
                group.tapeFrequency = frequency
            case "tape-time": group.tapeTime = try ClockTime.parse(value, what: "--tape-time")
            case "tape-pool": group.tapePool = value.isEmpty ? nil : value
            case "tape-library": group.tapeLibrary = value.isEmpty ? nil : value
            case "tape-drives":
                let drives = value.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard drives.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw HostError(.usage, "--tape-drives takes drive numbers separated by commas, like 0,1, not '\(value)'")
                }
                group.tapeDrives = drives.isEmpty ? nil : drives.compactMap { $0 }
            case "compression": group.compression = try Self.flag(value, key)
            case "encryption": group.encryption = try Self.flag(value, key)
            case "store-allocation": group.storeAllocationBytes = try Self.size(value)
            default: throw HostError(.usage, "unknown group option --\(key)")
            }
        }
        try check(group, options: options)
        group.modified = Date()
        return group
    }

    static func replica(_ value: String) throws -> ProtectionGroup.ReplicaCreation {
        if value == "now" { return .now }
        if value == "off-peak" { return .offPeak }
        if value.hasPrefix("at:") {
            let text = String(value.dropFirst(3))
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm:ss"] {
                formatter.dateFormat = format
                if let date = formatter.date(from: text) { return .at(date) }
            }
            throw rule("replica-creation", "--replica at:TIME needs a time like at:2026-12-01T02:00, not '\(text)'")
        }
        if value.hasPrefix("offline:") {
            let folder = String(value.dropFirst(8))
            guard FileSystem.isDirectory(folder) else {
                throw rule("replica-creation", "--replica offline:DIR needs the folder `dpm replica export` wrote; \(folder) is not a folder")
            }
            return .offline(folder)
        }
        throw rule("replica-creation", "--replica is now, at:TIME, off-peak or offline:DIR, not '\(value)'")
    }

    /// Every rule of behaviour 7 on a complete group.
    public func check(_ group: ProtectionGroup, options: [String: String] = [:]) throws {
        guard !group.name.isEmpty, group.name.count <= 64,
              group.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw Self.rule("group-name", "'\(group.name)' must be 1-64 characters of letters, digits, '.', '_' and '-'")
        }
        guard !group.members.isEmpty else { throw Self.rule("members", "a group needs at least one member (--members a,b)") }
        guard Set(group.members).count == group.members.count else { throw Self.rule("members", "a member is listed twice") }
        for member in group.members {
            guard dataSourceExists(member) else {
                throw Self.rule("unknown-member", "no data source '\(member)'; see `dpm datasources list` (add VMs with `dpm vm add`)")
            }
            if let other = groupOf(member), other != group.name {
                throw Self.rule("one-group-per-datasource", "\(member) already belongs to group \(other); remove it there first")
            }
        }
        guard (1...Self.maxShortTermRetentionDays).contains(group.retentionDays) else {
            throw Self.rule("short-term-retention", "retention of \(group.retentionDays) days is outside 1-\(Self.maxShortTermRetentionDays) days")
        }
        if let minutes = group.syncMinutes, !Self.syncFrequencies.contains(minutes) {
            throw Self.rule("sync-frequency", "sync every \(minutes) minutes is not offered")
        }
        if group.syncMinutes == nil && group.recoveryPointTimes.isEmpty {
            throw Self.rule("just-before-rp", "--sync just-before-rp needs at least one --rp-times time")
        }
        guard (1...Self.maxOnlineRetentionDays).contains(group.onlineRetentionDays) else {
            throw Self.rule("online-retention-max", "online retention of \(group.onlineRetentionDays) days is outside 1-\(Self.maxOnlineRetentionDays) days")
        }
        let longest = max(group.onlineRetentionDays, (group.onlineWeeks ?? 0) * 7, (group.onlineMonths ?? 0) * 31, (group.onlineYears ?? 0) * 366)
        guard longest <= Self.maxOnlineRetentionDays else {
            throw Self.rule("online-retention-max", "the weekly, monthly or yearly online copies would be kept \(longest) days, more than \(Self.maxOnlineRetentionDays) days")
        }
        let points = group.onlineCopyTimes.count * group.onlineRetentionDays + (group.onlineWeeks ?? 0) + (group.onlineMonths ?? 0) + (group.onlineYears ?? 0)
        guard points <= Self.maxOnlinePoints else {
            throw Self.rule("online-points-max", "this online policy keeps up to \(points) recovery points per data source, more than \(Self.maxOnlinePoints); "
                + "shorten the retention or take fewer copies a day")
        }
        guard group.tapeRetention.allowedFrequencies.contains(group.tapeFrequency) else {
            throw Self.rule("tape-frequency-for-range", "a \(group.tapeFrequency.rawValue) tape backup is not allowed with a retention of "
                + "\(group.tapeRetention.amount) \(group.tapeRetention.unit.rawValue); allowed: "
                + group.tapeRetention.allowedFrequencies.map(\.rawValue).joined(separator: ", "))
        }
        if group.online, let problem = tierProblem("online-tier") {
            throw Self.rule("tier-available", "--online on needs the online tier: \(problem)")
        }
        if group.tape, let problem = tierProblem("tape-library") {
            throw Self.rule("tier-available", "--tape on needs the tape library: \(problem)")
        }
    }
}
