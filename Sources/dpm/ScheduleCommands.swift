import Foundation
import Host

/// `dpm schedule show`: the day's plan of every group and of the server.
enum ScheduleCommands {
    static let all = [show]

    static let show = CommandDefinition(
        path: ["schedule", "show"], summary: "Show the day's plan: every job the scheduler will start, by time.", arguments: "",
        options: [OptionSpec(name: "day", value: "YYYY-MM-DD", help: "the day (default: today)")]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        let catalog = try service.catalog()
        let policy = try SchedulerPolicy(settings: service.settings)
        var day = Date()
        if let text = invocation.arguments.value("day") {
            let formatter = DateFormatter()
            formatter.dateFormat = "yyyy-MM-dd"
            formatter.timeZone = policy.timeZone
            guard let parsed = formatter.date(from: text) else { throw HostError(.usage, "--day takes YYYY-MM-DD") }
            day = parsed
        }
        let started = Date()
        let epoch = try catalog.scheduleStates()["server:epoch"]?.lastSlot ?? Calendar.current.startOfDay(for: day)
        var input = Scheduler.Input(groups: try catalog.groups(), serverEpoch: epoch)
        input.hasRecoveryPoint = try catalog.dataSourcesWithRecoveryPoints()
        input.inconsistent = try catalog.inconsistentDataSources()
        let plan = Scheduler(policy: policy).plan(day: day, input: input)
        let elapsed = Date().timeIntervalSince(started)
        var counts: [String: Int] = [:]
        for job in plan { counts[job.kind.rawValue, default: 0] += 1 }
        if invocation.json {
            try invocation.output.emit(SchedulePlan(jobs: plan.count, computedMs: Int(elapsed * 1000), byKind: counts,
                                                    first: plan.prefix(1000).map { .init(time: $0.slot, kind: $0.kind.rawValue, datasource: $0.datasource) }))
            return 0
        }
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm"
        formatter.timeZone = policy.timeZone
        invocation.output.line("\(plan.count) jobs: " + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for job in plan.prefix(500) {
            invocation.output.line("\(formatter.string(from: job.slot))  \(job.kind.rawValue)  \(job.datasource ?? "server")")
        }
        if plan.count > 500 { invocation.output.line("… \(plan.count - 500) more (use --json for the count)") }
        return 0
    }
}

/// `dpm schedule show --json`: the count of the day's jobs, by kind, and the first 1000.
struct SchedulePlan: Encodable {
    struct Entry: Encodable {
        var time: Date
        var kind: String
        var datasource: String?
    }

    var jobs: Int
    var computedMs: Int
    var byKind: [String: Int]
    var first: [Entry]
}
