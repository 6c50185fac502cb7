import Foundation
import Host
import PluginAPI

/// `dpm group create|modify|show|list|delete|plan`.
enum GroupCommands {
    static let all = [create, modify, show, list, delete, plan]

    static let editorOptions = GroupEditor.options.map { OptionSpec(name: $0.name, value: $0.value, help: $0.help) }

    static func values(_ invocation: Invocation) -> [String: String] {
        var values: [String: String] = [:]
        for option in GroupEditor.options { if let value = invocation.arguments.value(option.name) { values[option.name] = value } }
        return values
    }

    static let details = """
    Invalid combinations exit 2 with the rule's name: unknown-member, one-group-per-datasource, sync-frequency,
    short-term-retention (1-448 days), online-retention-max (3360 days), tape-retention-range (1-99y, 1-11m, 1-4w),
    tape-frequency-for-range (1-4 weeks: daily, weekly; 1-11 months: also biweekly, monthly; years: all), tier-available.
    """

    static func describe(_ group: ProtectionGroup, _ service: ProtectionService) -> [String: JSONValue] {
        let catalog = try? service.catalog()
        let names = group.members.map { id in (try? catalog?.dataSource(id))??.name ?? id }
        var value = (try? JSONCoding.decode(JSONValue.self, from: JSONCoding.encode(group))) ?? .null
        if case .object(var object) = value {
            object["member_names"] = .array(names.map { .string($0) })
            value = .object(object)
        }
        if case .object(let object) = value { return object }
        return [:]
    }

    static func print(_ group: ProtectionGroup, _ invocation: Invocation, _ service: ProtectionService) throws {
        if invocation.json {
            try invocation.output.emit(describe(group, service))
            return
        }
        let out = invocation.output
        let names = describe(group, service)["member_names"]?.arrayValue?.compactMap(\.stringValue) ?? []
        out.line("group \(group.name): \(names.joined(separator: ", "))\(group.colocate ? " (co-located)" : "")")
        out.line("  short-term: \(group.retentionDays) days, " + (group.syncMinutes.map { "sync every \($0) minutes" } ?? "express full just before each recovery point"))
        out.line("  recovery points: \(group.recoveryPointTimes.map(ClockTime.string).joined(separator: ", ")); express full: "
                 + (group.expressFullTimes.isEmpty ? "none" : group.expressFullTimes.map(ClockTime.string).joined(separator: ", ")))
        switch group.consistencyCheck {
        case .onlyIfInconsistent: out.line("  consistency check: only when inconsistent")
        case .daily(let minute): out.line("  consistency check: daily at \(ClockTime.string(minute))")
        }
        switch group.replicaCreation {
        case .now: out.line("  replica creation: now")
        case .at(let date): out.line("  replica creation: at \(date)")
        case .offPeak: out.line("  replica creation: in the off-peak window")
        case .offline(let folder): out.line("  replica creation: offline import from \(folder)")
        }
        out.line("  online: " + (group.online ? "on, \(group.onlineRetentionDays) days, daily at \(group.onlineCopyTimes.map(ClockTime.string).joined(separator: ", "))"
                 + [("weekly", group.onlineWeeks, "weeks"), ("monthly", group.onlineMonths, "months"), ("yearly", group.onlineYears, "years")]
                    .compactMap { name, count, unit in count.map { "; \(name) kept \($0) \(unit)" } }.joined() : "off"))
        out.line("  tape: " + (group.tape ? "on, \(group.tapeRetention), \(group.tapeFrequency.rawValue) at \(ClockTime.string(group.tapeTime)), "
                 + "pool \(group.tapePool ?? group.name), library \(group.tapeLibrary ?? "(first)"), drives \(group.tapeDrives.map { $0.map(String.init).joined(separator: ",") } ?? "any")" : "off")
                 + "; compression \(group.compression ? "on" : "off"), encryption \(group.encryption ? "on" : "off")")
        if let allocation = group.storeAllocationBytes { out.line("  store allocation: \(ByteFormat.string(allocation))") }
    }

    static let create = CommandDefinition(
        path: ["group", "create"], summary: "Create a protection group.", arguments: "NAME", details: details,
        options: editorOptions, positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let group = try GroupService(service: service).create(invocation.positionals[0], options: values(invocation))
        try print(group, invocation, service)
        return 0
    }

    static let modify = CommandDefinition(
        path: ["group", "modify"], summary: "Change a protection group's members or policy.", arguments: "NAME", details: details,
        options: editorOptions, positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let group = try GroupService(service: service).modify(invocation.positionals[0], options: values(invocation))
        try print(group, invocation, service)
        return 0
    }

    static let show = CommandDefinition(
        path: ["group", "show"], summary: "Show a protection group.", arguments: "NAME", positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        try print(try GroupService(service: service).group(invocation.positionals[0]), invocation, service)
        return 0
    }

    static let list = CommandDefinition(
        path: ["group", "list"], summary: "List the protection groups.", arguments: ""
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let groups = try service.catalog().groups()
        if invocation.json {
            try invocation.output.emit(groups.map { describe($0, service) })
        } else {
            invocation.output.table(["NAME", "MEMBERS", "RETENTION", "SYNC", "ONLINE", "TAPE"], groups.map {
                [$0.name, "\($0.members.count)", "\($0.retentionDays)d", $0.syncMinutes.map { "\($0)m" } ?? "just-before-rp",
                 $0.online ? "\($0.onlineRetentionDays)d" : "off", $0.tape ? "\($0.tapeRetention) \($0.tapeFrequency.rawValue)" : "off"]
            })
        }
        return 0
    }

    static let delete = CommandDefinition(
        path: ["group", "delete"], summary: "Delete a protection group (its recovery points stay).", arguments: "NAME", positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        try GroupService(service: service).delete(invocation.positionals[0])
        if invocation.json { try invocation.output.emit(["deleted": invocation.positionals[0]]) } else {
            invocation.output.line("deleted group \(invocation.positionals[0])")
        }
        return 0
    }

    static let plan = CommandDefinition(
        path: ["group", "plan"], summary: "The disk-allocation review: data size, store space and scratch space.", arguments: "NAME",
        details: """
        Store recommended = data size × (1 + daily churn × retention days), with the churn the catalog observed over
        the last week (10% a day before there is a day of history). Scratch space beside the disks = initial disk
        size × churn rate × concurrent backups, per volume. Edit the allocation with --store-allocation SIZE.
        """,
        options: [OptionSpec(name: "store-allocation", value: "SIZE", help: "set the group's store allocation, e.g. 500G")],
        positionals: 1...1
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let groups = GroupService(service: service)
        if let allocation = invocation.arguments.value("store-allocation") {
            _ = try groups.modify(invocation.positionals[0], options: ["store-allocation": allocation])
        }
        let plan = try groups.plan(invocation.positionals[0])
        if invocation.json {
            try invocation.output.emit(plan)
            return 0
        }
        let out = invocation.output
        out.line("group \(plan.group): \(plan.members.joined(separator: ", "))")
        out.line("  total data size:        \(ByteFormat.string(plan.dataBytes))")
        out.line("  daily churn:            " + String(format: "%.1f%%", plan.dailyChurn * 100) + (plan.churnObserved ? " (observed)" : " (assumed)"))
        out.line("  store recommended:      \(ByteFormat.string(plan.storeRecommended)) for \(plan.retentionDays) days")
        if let allocated = plan.storeAllocated { out.line("  store allocated:        \(ByteFormat.string(allocated))") }
        for volume in plan.scratch {
            out.line("  scratch at \(volume.volume): \(ByteFormat.string(volume.scratchRequired)) needed, \(ByteFormat.string(volume.scratchFree)) free")
        }
        out.line("  jobs per day:           " + plan.jobsPerDay.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for warning in plan.warnings { out.line("  warning: \(warning)") }
        return 0
    }
}
