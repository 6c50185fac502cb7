import Foundation
import XCTest
@testable import Host

/// The scheduler under a simulated clock: exact job sets over several days for a mixed set
/// of groups, catch-up after downtime, retries, and the concurrency rules.
final class SchedulerTests: XCTestCase {
    /// Drives a scheduler minute by minute, the way the server does, with jobs that take
    /// `duration` and end as `outcome` says.
    struct Simulation {
        var scheduler: Scheduler
        var input: Scheduler.Input
        var running: [(job: ScheduledJob, ends: Date)] = []
        var started: [(time: Date, job: ScheduledJob)] = []
        var attempts: [String: Int] = [:]
        var duration: (ScheduledJob) -> TimeInterval = { _ in 0 }
        var outcome: (ScheduledJob, Int) -> (succeeded: Bool, transient: Bool) = { _, _ in (true, false) }

        mutating func run(from start: Date, to end: Date, hosts: [String: String] = [:]) {
            var now = start
            while now < end {
                // Finish what ended.
                let (ended, still) = (running.filter { $0.ends <= now }, running.filter { $0.ends > now })
                running = still
                for item in ended { finish(item.job, now: now) }
                // Start what is due, as the server does, until nothing more starts this minute.
                while true {
                    let due = scheduler.due(input, now: now)
                    let chosen = scheduler.startable(due, running: running.map(\.job), hosts: hosts)
                    guard !chosen.isEmpty else { break }
                    for job in chosen {
                        started.append((now, job))
                        let ends = now.addingTimeInterval(duration(job))
                        if ends <= now { finish(job, now: now) } else { running.append((job, ends)) }
                    }
                }
                now = now.addingTimeInterval(60)
            }
        }

        mutating func finish(_ job: ScheduledJob, now: Date) {
            attempts[job.key, default: 0] += 1
            let result = outcome(job, attempts[job.key]!)
            let updates = scheduler.afterRun(job, succeeded: result.succeeded, transient: result.transient,
                                             state: input.states[job.key] ?? .init(), now: now)
            for (key, state) in updates { input.states[key] = state }
            if result.succeeded, job.kind.isBackup, let datasource = job.datasource { input.hasRecoveryPoint.insert(datasource) }
            if result.succeeded, job.kind == .consistencyCheck, let datasource = job.datasource { input.inconsistent.remove(datasource) }
        }

        func count(_ kind: JobKind, _ datasource: String? = nil) -> Int {
            started.filter { $0.job.kind == kind && $0.job.datasource == datasource }.count
        }

        func times(_ kind: JobKind, _ datasource: String?) -> [String] {
            started.filter { $0.job.kind == kind && $0.job.datasource == datasource }.map { SchedulerTests.clock($0.time) }
        }
    }

    static let utc = TimeZone(identifier: "UTC")!

    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)!
    }

    static func clock(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.timeZone = utc
        formatter.dateFormat = "EEE HH:mm"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: date)
    }

    func policy() -> SchedulerPolicy {
        var policy = SchedulerPolicy()
        policy.timeZone = Self.utc
        policy.maxJobs = 100
        policy.maxJobsPerHost = 100
        return policy
    }

    /// Monday 2026-11-23 00:00 UTC.
    let monday = SchedulerTests.date("2026-11-23T00:00:00Z")

    func mixedGroups() -> [ProtectionGroup] {
        var a = ProtectionGroup(name: "a", members: ["a1", "a2"])
        a.syncMinutes = 60
        a.expressFullTimes = [20 * 60]
        a.tape = true
        a.tapeFrequency = .daily
        a.created = monday; a.modified = monday
        var b = ProtectionGroup(name: "b", members: ["b1"])
        b.syncMinutes = nil
        b.recoveryPointTimes = [8 * 60, 18 * 60]
        b.expressFullTimes = []
        b.consistencyCheck = .daily(minuteOfDay: 2 * 60)
        b.online = true
        b.created = monday; b.modified = monday
        return [a, b]
    }

    func groupC(created: Date) -> ProtectionGroup {
        var c = ProtectionGroup(name: "c", members: ["c1"])
        c.syncMinutes = 240
        c.expressFullTimes = []
        c.replicaCreation = .offPeak
        c.created = created; c.modified = created
        return c
    }

    func testExactJobsOfAMixedSetOfGroupsOverThreeDays() {
        var simulation = Simulation(scheduler: Scheduler(policy: policy()), input: Scheduler.Input(groups: mixedGroups(), serverEpoch: monday))
        let cCreated = monday.addingTimeInterval(10 * 3600)
        simulation.run(from: monday, to: cCreated)
        simulation.input.groups.append(groupC(created: cCreated))
        simulation.run(from: cCreated, to: monday.addingTimeInterval(3 * 86_400))

        for member in ["a1", "a2"] {
            XCTAssertEqual(simulation.times(.replica, member), ["Mon 00:00"])
            XCTAssertEqual(simulation.count(.sync, member), 23 + 24 + 24 - 3, "hourly, minus the hours an express full covered")
            XCTAssertEqual(simulation.times(.expressFull, member), ["Mon 20:00", "Tue 20:00", "Wed 20:00"])
            XCTAssertEqual(simulation.times(.tapeCopy, member), ["Mon 23:00", "Tue 23:00", "Wed 23:00"])
            XCTAssertEqual(simulation.count(.onlineCopy, member), 0)
        }
        XCTAssertEqual(simulation.times(.replica, "b1"), ["Mon 00:00"])
        XCTAssertEqual(simulation.count(.sync, "b1"), 0, "just-before-rp means no periodic syncs")
        XCTAssertEqual(simulation.times(.expressFull, "b1"), ["Mon 08:00", "Mon 18:00", "Tue 08:00", "Tue 18:00", "Wed 08:00", "Wed 18:00"])
        XCTAssertEqual(simulation.times(.consistencyCheck, "b1"), ["Mon 02:00", "Tue 02:00", "Wed 02:00"])
        XCTAssertEqual(simulation.times(.onlineCopy, "b1"), ["Mon 21:00", "Tue 21:00", "Wed 21:00"])
        XCTAssertEqual(simulation.times(.replica, "c1"), ["Mon 22:00"], "off-peak replica waits for the window")
        XCTAssertEqual(simulation.times(.sync, "c1"), ["Tue 00:00", "Tue 04:00", "Tue 08:00", "Tue 12:00", "Tue 16:00", "Tue 20:00",
                                                       "Wed 00:00", "Wed 04:00", "Wed 08:00", "Wed 12:00", "Wed 16:00", "Wed 20:00"])
        XCTAssertEqual(simulation.times(.prune, nil), ["Mon 00:30", "Tue 00:30", "Wed 00:30"])
        XCTAssertEqual(simulation.times(.gc, nil), ["Mon 01:00", "Tue 01:00", "Wed 01:00"])
        XCTAssertEqual(simulation.count(.verify, nil), 0, "verify is weekly, on Sundays")
        XCTAssertEqual(simulation.started.count, 2 * (1 + 68 + 3 + 3) + (1 + 6 + 3 + 3) + (1 + 12) + 3 + 3)
    }

    func testARestartAfterDowntimeCatchesUpEachMissedJobOnce() {
        var simulation = Simulation(scheduler: Scheduler(policy: policy()), input: Scheduler.Input(groups: mixedGroups(), serverEpoch: monday))
        let tuesday = monday.addingTimeInterval(86_400)
        simulation.run(from: monday, to: tuesday.addingTimeInterval(6.5 * 3600))
        let before = simulation.started.count
        // Down from Tue 06:30 to Tue 12:10: the persisted states are all that survive.
        var restarted = Simulation(scheduler: Scheduler(policy: policy()), input: simulation.input)
        let back = tuesday.addingTimeInterval(12 * 3600 + 600)
        restarted.run(from: back, to: back.addingTimeInterval(60))
        let catchUp = restarted.started.map { "\($0.job.kind.rawValue) \($0.job.datasource ?? "server")" }.sorted()
        XCTAssertEqual(catchUp, ["express-full b1", "sync a1", "sync a2"], "one run per missed key, not one per missed slot")
        XCTAssertEqual(restarted.started.first { $0.job.datasource == "a1" }?.job.slot, tuesday.addingTimeInterval(12 * 3600))
        restarted.run(from: back.addingTimeInterval(60), to: tuesday.addingTimeInterval(13 * 3600 + 60))
        XCTAssertEqual(restarted.times(.sync, "a1"), ["Tue 12:10", "Tue 13:00"])
        XCTAssertGreaterThan(before, 0)
    }

    func testTransientFailuresAreRetriedWithBackoffThenGiveUpUntilTheNextSlot() {
        var group = ProtectionGroup(name: "r", members: ["r1"])
        group.syncMinutes = 60
        group.expressFullTimes = []
        group.created = monday; group.modified = monday
        var input = Scheduler.Input(groups: [group], serverEpoch: monday)
        input.hasRecoveryPoint = ["r1"]
        var simulation = Simulation(scheduler: Scheduler(policy: policy()), input: input)
        // Every sync of the 01:00 slot fails transiently; others succeed.
        simulation.outcome = { job, _ in
            job.kind == .sync && SchedulerTests.clock(job.slot) == "Mon 01:00" ? (false, true) : (true, false)
        }
        simulation.run(from: monday, to: monday.addingTimeInterval(2 * 3600 + 60))
        XCTAssertEqual(simulation.times(.sync, "r1"), ["Mon 01:00", "Mon 01:01", "Mon 01:03", "Mon 02:00"],
                       "retries after 1 and 2 minutes, then the third failure gives the slot up")
    }

    func testLimitsAndOneJobPerDataSource() {
        var group = ProtectionGroup(name: "l", members: (1...6).map { "vm\($0)" })
        group.syncMinutes = 15
        group.expressFullTimes = [60]
        group.created = monday; group.modified = monday
        var policy = policy()
        policy.maxJobs = 3
        policy.maxJobsPerHost = 2
        var input = Scheduler.Input(groups: [group], serverEpoch: monday)
        input.hasRecoveryPoint = Set(group.members)
        var simulation = Simulation(scheduler: Scheduler(policy: policy), input: input)
        simulation.duration = { _ in 20 * 60 }  // longer than the sync interval
        let hosts = ["vm1": "hv1", "vm2": "hv1", "vm3": "hv1", "vm4": "hv2", "vm5": "hv2", "vm6": "hv3"]
        var overlaps = 0
        var maxRunning = 0
        var maxPerHost = 0
        var now = monday
        while now < monday.addingTimeInterval(4 * 3600) {
            simulation.run(from: now, to: now.addingTimeInterval(60), hosts: hosts)
            maxRunning = max(maxRunning, simulation.running.count)
            let lanes = simulation.running.map { $0.job.datasource ?? "*" }
            if Set(lanes).count != lanes.count { overlaps += 1 }
            for host in Set(hosts.values) {
                maxPerHost = max(maxPerHost, simulation.running.filter { hosts[$0.job.datasource ?? ""] == host }.count)
            }
            now = now.addingTimeInterval(60)
        }
        XCTAssertEqual(overlaps, 0, "two jobs ran on one data source at once")
        XCTAssertEqual(maxRunning, 3)
        XCTAssertLessThanOrEqual(maxPerHost, 2)
        let served = group.members.map { simulation.count(.sync, $0) + simulation.count(.expressFull, $0) }
        XCTAssertGreaterThanOrEqual(served.min() ?? 0, 4, "every data source gets its turn: \(served)")
        XCTAssertLessThanOrEqual((served.max() ?? 0) - (served.min() ?? 0), 2, "turns are shared fairly: \(served)")
    }

    func testTheDaysPlanFor800VMsHasEveryJob() {
        var groups: [ProtectionGroup] = []
        for number in 0..<20 {
            var group = ProtectionGroup(name: "g\(number)", members: (0..<40).map { "vm-\(number)-\($0)" })
            group.syncMinutes = 15
            group.created = monday; group.modified = monday
            groups.append(group)
        }
        var input = Scheduler.Input(groups: groups, serverEpoch: monday)
        input.hasRecoveryPoint = Set(groups.flatMap(\.members))
        let plan = Scheduler(policy: policy()).plan(day: monday, input: input)
        // 96 quarter hours a day, less 00:00 (the group's creation) and 20:00 (the express full).
        XCTAssertEqual(plan.filter { $0.kind == .sync }.count, 800 * (96 - 2))
        XCTAssertEqual(plan.filter { $0.kind == .expressFull }.count, 800)
    }
}
