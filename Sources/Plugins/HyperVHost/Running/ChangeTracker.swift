import Foundation
import PluginAPI

/// Changed-block tracking for a running VM with QEMU dirty bitmaps, one per disk.
///
/// Generations: the point of recovery point N is taken in the same QMP transaction that
/// adds bitmap g(N) (recording from that instant) and disables bitmap g(N-1). So g(N-1),
/// now frozen, holds exactly the writes between points N-1 and N: the incremental's
/// changed ranges, read through the NBD export's `qemu:dirty-bitmap:g(N-1)` context.
/// After the point is committed, g(N-1) is removed and the token names g(N). If the backup
/// fails, g(N) is merged back into g(N-1), which is re-enabled, so the previous token
/// stays valid and no write is ever lost from tracking.
///
/// Trust: the previous bitmap is used only if the token parses, names it for this disk's
/// image file, and QEMU still has it, consistent, in the same QEMU process, or (qcow2) stored
/// persistently across a clean restart. Otherwise `changes` answers nil and the host hashes.
///
/// Leftovers: a backup killed midway leaves extra bitmaps of this VM. They are merged into
/// the trusted bitmap (more dirty bits are always safe) or, with no trusted bitmap, removed.
final class ChangeTracker {
    struct Plan {
        var disk: RunningDisk
        /// The bitmap of the previous point, trusted, disabled in the transaction, exported.
        var previous: String?
        /// The bitmap this point starts.
        var next: String
        var persistent: Bool
        /// Why the previous bitmap cannot be used (nil when it can, or there is no previous point).
        var untrusted: String?
    }

    let qmp: QMPClient
    let names: FleeceNames
    let instance: String
    let previousToken: String?
    private(set) var plans: [Plan] = []
    /// Notes for the job result (restarts survived, leftovers merged).
    private(set) var notes: [String] = []
    /// Set once the transaction that starts the new bitmaps has run.
    var started = false

    /// Reconciles the bitmaps of every disk with the previous token; changes QEMU only to
    /// merge or remove this VM's leftovers.
    init(qmp: QMPClient, names: FleeceNames, disks: [RunningDisk], previousToken: String?, instance: String) throws {
        self.qmp = qmp
        self.names = names
        self.instance = instance
        self.previousToken = previousToken
        let token = previousToken.flatMap { TrackingToken(text: $0) }
        for (index, disk) in disks.enumerated() {
            let ours = try QEMUBlockGraph.bitmaps(qmp, node: disk.node).filter { names.generation(ofBitmap: $0.name) != nil }
            let entry = token?.disks.first { $0.file == disk.file }
            var untrusted: String?
            var previous: DirtyBitmap?
            let label = "disk\(index) (\(disk.file))"
            if previousToken == nil {
                untrusted = nil
            } else if token == nil {
                untrusted = "\(label): the previous recovery point was not taken from the running VM, so no dirty bitmap covers the time since"
            } else if let entry {
                let restarted = token!.instance != instance && token!.instance != "unknown" && instance != "unknown"
                if let found = ours.first(where: { $0.name == entry.bitmap }) {
                    if found.inconsistent {
                        untrusted = "\(label): dirty bitmap \(found.name) is marked inconsistent (QEMU stopped without saving it)"
                    } else if restarted && !found.persistent {
                        untrusted = "\(label): QEMU restarted since the previous backup and bitmap \(found.name) is not the one dpm started"
                    } else {
                        previous = found
                        if restarted { notes.append("\(label): change tracking continued across a QEMU restart through persistent bitmap \(found.name)") }
                    }
                } else if restarted {
                    untrusted = "\(label): QEMU restarted since the previous backup (\(token!.instance) → \(instance)) and its dirty bitmap \(entry.bitmap) was lost"
                        + (disk.format == .qcow2 ? "" : " (\(disk.format.displayName) disks keep dirty bitmaps in memory only)")
                } else {
                    untrusted = "\(label): dirty bitmap \(entry.bitmap) is gone from node \(disk.node) (removed outside dpm?)"
                }
            } else {
                untrusted = "\(label): the disk is not in the previous recovery point's change tracking"
            }
            try reconcile(node: disk.node, ours: ours, keep: previous, label: label)
            let generation = (ours.compactMap { names.generation(ofBitmap: $0.name) } + (token?.disks.compactMap { names.generation(ofBitmap: $0.bitmap) } ?? [])).max() ?? 0
            plans.append(Plan(disk: disk, previous: previous?.name, next: names.bitmap(generation: generation + 1),
                              persistent: disk.format == .qcow2, untrusted: untrusted))
        }
    }

    /// Folds this VM's leftover bitmaps into `keep` (re-enabling it), or removes them all.
    private func reconcile(node: String, ours: [DirtyBitmap], keep: DirtyBitmap?, label: String) throws {
        let others = ours.filter { $0.name != keep?.name }
        if let keep {
            let mergeable = others.filter { !$0.inconsistent }
            if !mergeable.isEmpty {
                try qmp.run("block-dirty-bitmap-merge", ["node": .string(node), "target": .string(keep.name),
                                                         "bitmaps": .array(mergeable.map { .string($0.name) })],
                            doing: "merging leftover bitmaps of an interrupted backup into \(keep.name)")
                notes.append("\(label): merged \(mergeable.count) bitmap(s) left by an interrupted backup into \(keep.name)")
            }
            if !keep.recording {
                try qmp.run("block-dirty-bitmap-enable", ["node": .string(node), "name": .string(keep.name)], doing: "re-enabling bitmap \(keep.name)")
            }
        }
        for bitmap in others {
            try qmp.run("block-dirty-bitmap-remove", ["node": .string(node), "name": .string(bitmap.name)], doing: "removing stale bitmap \(bitmap.name)")
        }
    }

    /// The transaction actions that start the new bitmaps and freeze the previous ones.
    var transactionActions: [JSONValue] {
        plans.flatMap { plan -> [JSONValue] in
            var add: [String: JSONValue] = ["node": .string(plan.disk.node), "name": .string(plan.next)]
            if plan.persistent { add["persistent"] = .bool(true) }
            var actions: [JSONValue] = [.object(["type": .string("block-dirty-bitmap-add"), "data": .object(add)])]
            if let previous = plan.previous {
                actions.append(.object(["type": .string("block-dirty-bitmap-disable"),
                                        "data": .object(["node": .string(plan.disk.node), "name": .string(previous)])]))
            }
            return actions
        }
    }

    /// The NBD metadata context carrying disk `index`'s changes, when they can be trusted.
    func changesContext(_ index: Int, since token: String) -> String? {
        guard started, token == previousToken, index < plans.count, let previous = plans[index].previous else { return nil }
        return "qemu:dirty-bitmap:" + previous
    }

    /// The point was committed: drop the previous bitmaps; returns the new token.
    /// Call after the exports that used them are gone.
    func commit() -> (token: String?, problems: [String]) {
        guard started else { return (nil, []) }
        var problems: [String] = []
        for plan in plans {
            guard let previous = plan.previous else { continue }
            do {
                try qmp.run("block-dirty-bitmap-remove", ["node": .string(plan.disk.node), "name": .string(previous)], doing: "removing bitmap \(previous)")
            } catch {
                problems.append("\(error); the next backup merges it")
            }
        }
        let token = TrackingToken(instance: instance, disks: plans.map {
            TrackingToken.Disk(file: $0.disk.file, node: $0.disk.node, bitmap: $0.next, persistent: $0.persistent)
        })
        return (token.text, problems)
    }

    /// The point was not committed: fold the new bitmaps back into the previous ones, so the
    /// previous token still covers every write.
    func rollback() -> [String] {
        guard started else { return [] }
        var problems: [String] = []
        for plan in plans {
            let node = JSONValue.string(plan.disk.node)
            do {
                if let previous = plan.previous {
                    try qmp.run("block-dirty-bitmap-merge", ["node": node, "target": .string(previous), "bitmaps": .array([.string(plan.next)])],
                                doing: "merging bitmap \(plan.next) back into \(previous)")
                    try qmp.run("block-dirty-bitmap-enable", ["node": node, "name": .string(previous)], doing: "re-enabling bitmap \(previous)")
                }
                try qmp.run("block-dirty-bitmap-remove", ["node": node, "name": .string(plan.next)], doing: "removing bitmap \(plan.next)")
            } catch {
                problems.append("\(error); the next backup reconciles the bitmaps of \(plan.disk.file)")
            }
        }
        started = false
        return problems
    }
}
