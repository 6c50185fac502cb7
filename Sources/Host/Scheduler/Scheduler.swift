import Foundation

/// Plans the jobs of every group and of the server, deterministically from its inputs and
/// the time it is given (no clock of its own, so tests drive it with a simulated one).
///
/// Rules:
/// - Each job key (kind and data source) remembers the last slot it ran; a key is due when
///   the latest slot of its schedule at `now` is newer. After downtime that is one run, not
///   one per missed slot.
/// - A key never seen before counts from its group's creation (or, for server-wide work,
///   from the server's first start), so nothing from before then is "missed".
/// - A new member first needs its replica (by the group's creation method: now, at a time,
///   in the off-peak window, or imported from an offline folder); until then no other
///   backup of it is planned.
/// - Backups due together on one data source merge into the strongest (consistency check >
///   replica > express full > sync), which also satisfies the others.
/// - A transient failure is retried after retryBase × 2^(attempt-1), up to maxAttempts.
/// - Nothing runs twice on one data source (or two server-wide jobs) at once, and the
///   per-server and per-host limits hold; when jobs queue, the data source served longest
///   ago goes first.
public struct Scheduler {
    public struct Input {
        public var groups: [ProtectionGroup]
        /// The host each data source runs on, for the per-host limit.
        public var hosts: [String: String] = [:]
        public var hasRecoveryPoint: Set<String> = []
        public var inconsistent: Set<String> = []
        public var states: [String: Catalog.ScheduleState] = [:]
        /// When the server first ran on this data directory.
        public var serverEpoch: Date

        public init(groups: [ProtectionGroup], serverEpoch: Date) {
            self.groups = groups
            self.serverEpoch = serverEpoch
        }
    }

    public let policy: SchedulerPolicy
    let calendar: Calendar

    public init(policy: SchedulerPolicy) {
        self.policy = policy
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = policy.timeZone
        self.calendar = calendar
    }

    // MARK: Slots

    func midnight(_ date: Date) -> Date { calendar.startOfDay(for: date) }

    func at(_ day: Date, minute: Int) -> Date {
        calendar.date(byAdding: .minute, value: minute, to: midnight(day)) ?? day
    }

    /// The latest time ≤ `now` among daily times (minutes after midnight).
    func latestDaily(_ minutes: [Int], now: Date) -> Date? {
        guard !minutes.isEmpty else { return nil }
        for back in 0...1 {
            guard let day = calendar.date(byAdding: .day, value: -back, to: now) else { continue }
            let candidates = minutes.map { at(day, minute: $0) }.filter { $0 <= now }
            if let latest = candidates.max() { return latest }
        }
        return nil
    }

    /// The latest multiple of `every` minutes after midnight that is ≤ `now`.
    func latestPeriodic(every minutes: Int, now: Date) -> Date {
        let start = midnight(now)
        let elapsed = Int(now.timeIntervalSince(start) / 60)
        return calendar.date(byAdding: .minute, value: elapsed / minutes * minutes, to: start) ?? start
    }

    /// Whether `day` is a tape day for the frequency.
    func isTapeDay(_ day: Date, _ frequency: TapeFrequency) -> Bool {
        let parts = calendar.dateComponents([.weekday, .day, .month, .weekOfYear], from: day)
        switch frequency {
        case .daily: return true
        case .weekly: return parts.weekday == 1
        case .biweekly: return parts.weekday == 1 && (parts.weekOfYear ?? 0) % 2 == 0
        case .monthly: return parts.day == 1
        case .quarterly: return parts.day == 1 && [1, 4, 7, 10].contains(parts.month ?? 0)
        case .halfYearly: return parts.day == 1 && [1, 7].contains(parts.month ?? 0)
        case .yearly: return parts.day == 1 && parts.month == 1
        }
    }

    func latestOnDays(minute: Int, now: Date, within days: Int, isDay: (Date) -> Bool) -> Date? {
        for back in 0...days {
            guard let day = calendar.date(byAdding: .day, value: -back, to: now) else { continue }
            let slot = at(day, minute: minute)
            if slot <= now && isDay(day) { return slot }
        }
        return nil
    }

    /// The start of the off-peak window that contains `now`, if any.
    func offPeakStart(_ now: Date) -> Date? {
        guard let window = policy.offPeak else { return now }
        let minute = calendar.component(.hour, from: now) * 60 + calendar.component(.minute, from: now)
        if window.start <= window.end {
            return (window.start..<window.end).contains(minute) ? at(now, minute: window.start) : nil
        }
        if minute >= window.start { return at(now, minute: window.start) }
        if minute < window.end, let yesterday = calendar.date(byAdding: .day, value: -1, to: now) {
            return at(yesterday, minute: window.start)
        }
        return nil
    }

    /// The latest slot ≤ `now` of a key's schedule, or nil when it has none yet.
    func latestSlot(_ kind: JobKind, group: ProtectionGroup?, datasource: String?, now: Date, input: Input) -> Date? {
        switch kind {
        case .sync:
            guard let group, let minutes = group.syncMinutes else { return nil }
            return latestPeriodic(every: minutes, now: now)
        case .expressFull:
            guard let group else { return nil }
            return latestDaily(group.expressFullTimes + (group.syncMinutes == nil ? group.recoveryPointTimes : []), now: now)
        case .replica:
            guard let group else { return nil }
            switch group.replicaCreation {
            case .now: return group.modified <= now ? group.modified : nil
            case .at(let date): return date <= now ? date : nil
            case .offPeak: return offPeakStart(now)
            case .offline: return group.modified <= now ? group.modified : nil
            }
        case .consistencyCheck:
            guard let group, let datasource else { return nil }
            if input.inconsistent.contains(datasource) {
                return calendar.dateInterval(of: .hour, for: now)?.start
            }
            if case .daily(let minute) = group.consistencyCheck { return latestDaily([minute], now: now) }
            return nil
        case .tapeCopy:
            guard let group, group.tape else { return nil }
            return latestOnDays(minute: group.tapeTime, now: now, within: 370) { isTapeDay($0, group.tapeFrequency) }
        case .onlineCopy:
            guard let group, group.online else { return nil }
            return latestDaily(group.onlineCopyTimes, now: now)
        case .prune: return latestDaily([policy.pruneTime], now: now)
        case .gc: return latestDaily([policy.gcTime], now: now)
        case .verify:
            return latestOnDays(minute: policy.verifyTime, now: now, within: 8) { calendar.component(.weekday, from: $0) == policy.verifyWeekday }
        }
    }

    // MARK: Due jobs

    /// The slot a key last satisfied, or its baseline when never seen.
    func lastSlot(_ key: String, kind: JobKind, group: ProtectionGroup?, datasource: String?, input: Input) -> Date? {
        if let last = input.states[key]?.lastSlot { return last }
        if kind == .replica || (kind == .consistencyCheck && datasource.map(input.inconsistent.contains) == true) { return nil }
        let anchor = group?.created ?? input.serverEpoch
        return latestSlot(kind, group: group, datasource: datasource, now: anchor, input: input) ?? anchor
    }

    /// Everything due at `now`, strongest and oldest first; backups due together on one data
    /// source are merged into the strongest.
    public func due(_ input: Input, now: Date) -> [ScheduledJob] {
        var jobs: [ScheduledJob] = []
        func consider(_ kind: JobKind, group: ProtectionGroup?, datasource: String?) {
            let key = ScheduledJob.key(kind, datasource)
            guard let slot = latestSlot(kind, group: group, datasource: datasource, now: now, input: input) else { return }
            if let last = lastSlot(key, kind: kind, group: group, datasource: datasource, input: input), slot <= last { return }
            if let retry = input.states[key]?.retryAt, retry > now { return }
            jobs.append(ScheduledJob(kind: kind, datasource: datasource, group: group?.name, slot: slot))
        }
        for group in input.groups {
            for member in group.members {
                if !input.hasRecoveryPoint.contains(member) {
                    consider(.replica, group: group, datasource: member)
                    // The replica is a full copy: it also stands for the backups due now.
                    if let index = jobs.indices.last, jobs[index].kind == .replica, jobs[index].datasource == member {
                        for kind in [JobKind.expressFull, .sync] {
                            if let slot = latestSlot(kind, group: group, datasource: member, now: now, input: input) {
                                jobs[index].satisfies[ScheduledJob.key(kind, member)] = slot
                            }
                        }
                    }
                    continue
                }
                for kind in [JobKind.consistencyCheck, .expressFull, .sync, .tapeCopy, .onlineCopy] {
                    consider(kind, group: group, datasource: member)
                }
            }
        }
        for kind in [JobKind.prune, .gc, .verify] { consider(kind, group: nil, datasource: nil) }

        // Merge backups due together on one data source into the strongest.
        var merged: [ScheduledJob] = []
        var strongest: [String: Int] = [:]
        for job in jobs {
            guard job.kind.isBackup, let datasource = job.datasource else { merged.append(job); continue }
            if let index = strongest[datasource] {
                if job.kind.strength < merged[index].kind.strength {
                    var stronger = job
                    stronger.satisfies = merged[index].satisfies
                    stronger.satisfies[merged[index].key] = merged[index].slot
                    merged[index] = stronger
                } else {
                    merged[index].satisfies[job.key] = job.slot
                }
            } else {
                strongest[datasource] = merged.count
                merged.append(job)
            }
        }
        // Strongest first, then the oldest slot, then whoever was served longest ago (so an
        // overloaded server rotates through its data sources instead of starving some).
        func served(_ job: ScheduledJob) -> Date { input.states[job.key]?.lastSlot ?? .distantPast }
        return merged.sorted {
            ($0.kind.strength, $0.slot, served($0), $0.lane) < ($1.kind.strength, $1.slot, served($1), $1.lane)
        }
    }

    /// The due jobs that may start now, beside the running ones, within the limits.
    public func startable(_ due: [ScheduledJob], running: [ScheduledJob], hosts: [String: String]) -> [ScheduledJob] {
        var lanes = Set(running.map(\.lane))
        var perHost: [String: Int] = [:]
        for job in running { if let host = job.datasource.flatMap({ hosts[$0] }) { perHost[host, default: 0] += 1 } }
        var count = running.count
        var chosen: [ScheduledJob] = []
        for job in due where count < policy.maxJobs {
            guard !lanes.contains(job.lane) else { continue }
            if let host = job.datasource.flatMap({ hosts[$0] }) {
                guard perHost[host, default: 0] < policy.maxJobsPerHost else { continue }
                perHost[host, default: 0] += 1
            }
            lanes.insert(job.lane)
            count += 1
            chosen.append(job)
        }
        return chosen
    }

    /// What the scheduler remembers after a run ends.
    public func afterRun(_ job: ScheduledJob, succeeded: Bool, transient: Bool, state: Catalog.ScheduleState, now: Date) -> [String: Catalog.ScheduleState] {
        if succeeded || !transient || state.attempts + 1 >= policy.maxAttempts {
            var updates = [job.key: Catalog.ScheduleState(lastSlot: job.slot)]
            if succeeded { for (key, slot) in job.satisfies { updates[key] = Catalog.ScheduleState(lastSlot: slot) } }
            return updates
        }
        let attempts = state.attempts + 1
        let delay = policy.retryBase * pow(2, Double(attempts - 1))
        return [job.key: Catalog.ScheduleState(lastSlot: state.lastSlot, attempts: attempts, retryAt: now.addingTimeInterval(delay))]
    }

    /// Every run of one day, as if each ran the moment it was due and nothing failed:
    /// the day's plan (`dpm group plan`, the scheduler benchmark).
    public func plan(day: Date, input: Input, step: TimeInterval = 60) -> [ScheduledJob] {
        var input = input
        var jobs: [ScheduledJob] = []
        let start = midnight(day)
        var now = start
        let end = calendar.date(byAdding: .day, value: 1, to: start) ?? start.addingTimeInterval(86_400)
        while now < end {
            // A replica makes its member's other work due at once (a tape copy of the new
            // point, say), so the same minute is looked at again after one.
            var again = true
            while again {
                again = false
                for job in due(input, now: now) {
                    jobs.append(job)
                    for (key, state) in afterRun(job, succeeded: true, transient: false, state: input.states[job.key] ?? .init(), now: now) {
                        input.states[key] = state
                    }
                    if job.kind == .replica, let datasource = job.datasource, input.hasRecoveryPoint.insert(datasource).inserted { again = true }
                }
            }
            now = nextEvent(after: now, input: input, limit: end) ?? end
        }
        return jobs
    }

    /// The next minute at which anything can become due (a cheap upper bound: the next
    /// minute-of-day used by any schedule).
    func nextEvent(after now: Date, input: Input, limit: Date) -> Date? {
        var minutes = Set([policy.pruneTime, policy.gcTime, policy.verifyTime])
        for group in input.groups {
            if let every = group.syncMinutes { for minute in stride(from: 0, to: 1440, by: every) { minutes.insert(minute) } }
            minutes.formUnion(group.expressFullTimes)
            if group.syncMinutes == nil { minutes.formUnion(group.recoveryPointTimes) }
            if group.tape { minutes.insert(group.tapeTime) }
            if group.online { minutes.formUnion(group.onlineCopyTimes) }
            if case .daily(let minute) = group.consistencyCheck { minutes.insert(minute) }
        }
        let current = Int(now.timeIntervalSince(midnight(now)) / 60)
        guard let next = minutes.filter({ $0 > current }).min() else { return nil }
        let date = at(now, minute: next)
        return date < limit ? date : nil
    }
}
