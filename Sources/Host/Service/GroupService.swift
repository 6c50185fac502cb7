import Foundation
import PluginAPI

/// Protection groups as the CLI manages them: create, modify, delete, and the
/// disk-allocation review (`dpm group plan`).
public final class GroupService {
    let service: ProtectionService

    public init(service: ProtectionService) {
        self.service = service
    }

    func editor() throws -> GroupEditor {
        let catalog = try service.catalog()
        let registry = try service.registry()
        return GroupEditor(
            dataSourceExists: { (try? catalog.dataSource($0)) != nil },
            groupOf: { (try? catalog.groupName(ofDataSource: $0)) ?? nil },
            tierProblem: { id in
                guard let provider = registry.infos.first(where: { $0.id == id }) else { return "provider \(id) is not loaded" }
                if !provider.enabled { return "provider \(id) is disabled; enable it with `dpm plugins enable \(id)`" }
                if provider.status != "ready" { return "provider \(id) is planned: \(provider.statusMessage)" }
                return Self.unconfigured(id, registry: registry)
            })
    }

    /// Why a ready tier cannot take copies yet: no tape library, or no bucket set up.
    static func unconfigured(_ id: String, registry: ProviderRegistry) -> String? {
        do {
            let tier = try registry.tier(id)
            switch id {
            case "tape-library":
                let libraries = try tier.command("library.list")["libraries"]?.arrayValue ?? []
                return libraries.isEmpty ? "no tape library is set up; add one with `dpm tape library add`" : nil
            case ProtectionService.onlineTierID:
                _ = try tier.command("status")
                return nil
            default:
                return nil
            }
        } catch {
            return "\(error)"
        }
    }

    /// Resolves member names to data source ids (registering new ones), so the group stores ids.
    func resolveMembers(_ options: inout [String: String]) throws {
        guard let members = options["members"] else { return }
        var ids: [String] = []
        for name in members.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            do {
                ids.append(try service.resolveDataSource(name).0.id)
            } catch let error as HostError where error.code == .notFound {
                throw HostError(.usage, "rule unknown-member: no data source '\(name)'; see `dpm datasources list` (add VMs with `dpm vm add`)")
            }
        }
        options["members"] = ids.joined(separator: ",")
    }

    public func create(_ name: String, options: [String: String]) throws -> ProtectionGroup {
        let catalog = try service.catalog()
        guard try catalog.group(name) == nil else { throw HostError(.usage, "rule group-name: group \(name) already exists; use `dpm group modify`") }
        var options = options
        guard options["members"] != nil else { throw HostError(.usage, "rule members: a new group needs --members a,b") }
        try resolveMembers(&options)
        let group = try editor().apply(options, to: ProtectionGroup(name: name, members: []))
        try catalog.save(group)
        return group
    }

    public func modify(_ name: String, options: [String: String]) throws -> ProtectionGroup {
        let catalog = try service.catalog()
        guard let existing = try catalog.group(name) else { throw HostError(.notFound, "no group \(name); see `dpm group list`") }
        var options = options
        try resolveMembers(&options)
        let group = try editor().apply(options, to: existing)
        try catalog.save(group)
        return group
    }

    public func delete(_ name: String) throws {
        let catalog = try service.catalog()
        guard try catalog.group(name) != nil else { throw HostError(.notFound, "no group \(name); see `dpm group list`") }
        try catalog.deleteGroup(name)
    }

    public func group(_ name: String) throws -> ProtectionGroup {
        guard let group = try service.catalog().group(name) else { throw HostError(.notFound, "no group \(name); see `dpm group list`") }
        return group
    }

    /// The disk-allocation review of behaviour 7.
    public struct Plan: Codable, Sendable {
        public struct Volume: Codable, Sendable {
            public var volume: String
            public var diskBytes: UInt64
            public var scratchRequired: UInt64
            public var scratchFree: UInt64
        }
        public var group: String
        public var members: [String]
        public var dataBytes: UInt64
        /// Observed (or assumed, 10%) new bytes per day as a fraction of the data.
        public var dailyChurn: Double
        public var churnObserved: Bool
        public var retentionDays: Int
        /// Replica plus retention × daily churn.
        public var storeRecommended: UInt64
        public var storeAllocated: UInt64?
        public var scratch: [Volume]
        public var jobsPerDay: [String: Int]
        public var warnings: [String]
    }

    public func plan(_ name: String, now: Date = Date()) throws -> Plan {
        let group = try group(name)
        let catalog = try service.catalog()
        let registry = try service.registry()
        let sources = try group.members.compactMap { try catalog.dataSource($0) }
        // Each provider enumerates once; its descriptions give sizes and disk paths.
        var descriptions: [String: DataSourceDescription] = [:]
        for provider in Set(sources.map(\.provider)) {
            for description in (try? registry.workload(provider).enumerate()) ?? [] { descriptions[description.id] = description }
        }
        var dataBytes: UInt64 = 0
        var names: [String] = []
        var newPerDay: Double = 0
        var observedDays = 0.0
        for source in sources {
            names.append(source.name)
            dataBytes += descriptions[source.id]?.size ?? 0
            let points = try catalog.recoveryPoints(datasource: source.id).filter { now.timeIntervalSince($0.time) <= 7 * 86_400 }.dropFirst()
            if let first = points.first, let last = points.last, last.time > first.time {
                newPerDay += Double(points.reduce(UInt64(0)) { $0 + $1.bytesNew }) / max(1, last.time.timeIntervalSince(first.time) / 86_400)
                observedDays = max(observedDays, last.time.timeIntervalSince(first.time) / 86_400)
            }
        }
        let observed = observedDays >= 1 && dataBytes > 0
        let churn = observed ? min(1, newPerDay / Double(dataBytes)) : 0.1
        let recommended = UInt64(Double(dataBytes) * (1 + churn * Double(group.retentionDays)))
        // Scratch space: initial disk size × churn rate × concurrent backups, per volume.
        let policy = try SchedulerPolicy(settings: service.settings)
        var byVolume: [UInt64: Plan.Volume] = [:]
        for source in sources {
            guard let description = descriptions[source.id] else { continue }
            let paths = (description.details?["disks"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0.hasPrefix("/") }
            for path in paths {
                var status = stat()
                var volume = statvfs()
                let directory = (path as NSString).deletingLastPathComponent
                guard stat(directory, &status) == 0, statvfs(directory, &volume) == 0 else { continue }
                let share = UInt64(paths.isEmpty ? 0 : description.size / UInt64(paths.count))
                var entry = byVolume[UInt64(status.st_dev)] ?? Plan.Volume(volume: directory, diskBytes: 0, scratchRequired: 0,
                                                                         scratchFree: UInt64(volume.f_bavail) * UInt64(volume.f_frsize))
                entry.diskBytes += share
                byVolume[UInt64(status.st_dev)] = entry
            }
        }
        let backups = min(max(1, group.members.count), policy.maxJobsPerHost)
        var volumes = byVolume.values.map { volume -> Plan.Volume in
            var volume = volume
            volume.scratchRequired = UInt64((Double(volume.diskBytes) * churn * Double(backups)).rounded(.up))
            return volume
        }.sorted { $0.volume < $1.volume }
        var warnings: [String] = []
        if !observed { warnings.append("no week of history yet: the plan assumes 10% daily churn") }
        if let allocated = group.storeAllocationBytes, allocated < recommended {
            warnings.append("the store allocation (\(ByteFormat.string(allocated))) is below the recommended \(ByteFormat.string(recommended))")
        }
        for volume in volumes where volume.scratchFree < volume.scratchRequired {
            warnings.append("\(volume.volume) has \(ByteFormat.string(volume.scratchFree)) free but backups need \(ByteFormat.string(volume.scratchRequired)) of scratch space")
        }
        volumes = volumes.filter { $0.diskBytes > 0 }
        let scheduler = Scheduler(policy: policy)
        var input = Scheduler.Input(groups: [group], serverEpoch: now)
        input.hasRecoveryPoint = try catalog.dataSourcesWithRecoveryPoints()
        var perDay: [String: Int] = [:]
        for job in scheduler.plan(day: now, input: input) where job.group == group.name { perDay[job.kind.rawValue, default: 0] += 1 }
        return Plan(group: group.name, members: names, dataBytes: dataBytes, dailyChurn: churn, churnObserved: observed,
                    retentionDays: group.retentionDays, storeRecommended: recommended, storeAllocated: group.storeAllocationBytes,
                    scratch: volumes, jobsPerDay: perDay, warnings: warnings)
    }
}
