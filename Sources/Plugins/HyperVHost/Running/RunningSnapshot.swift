import Foundation
import PluginAPI

/// A snapshot of a running VM linked to its QEMU over QMP (`dpm vm add --qmp`).
///
/// Prepare: clear leftovers of interrupted backups, reconcile the dirty bitmaps with the
/// previous token, create the overlays, take the point online or offline (`Quiescer`),
/// export the point-in-time view over NBD. Reads and block status go through NBD; the
/// allocation of VHDX disks comes from dpm's own reader on the disk file (QEMU reports VHDX
/// as fully allocated). Finish: tear everything down and commit or roll back the bitmaps.
///
/// Why the native VHDX map taken after the point is right for the point: QEMU's VHDX driver
/// never deallocates a block (it has no discard), so a block allocated at the point is still
/// allocated; a block allocated since reads, through the overlay, as the zeros it held.
final class RunningSnapshot: WorkloadSnapshot {
    let vm: VMRecord
    private(set) var description: SnapshotDescription
    private let qmp: QMPClient
    private let disks: [RunningDisk]
    private let view: PointInTimeView
    private let tracker: ChangeTracker
    private let clients: [NBDClient]
    private var notes: [String] = []
    private var finished = false

    /// Takes the point and opens its view.
    /// - Parameter qmp: a connected client of the VM's QEMU; the snapshot owns it from here.
    init(vm: VMRecord, qmp: QMPClient, request: SnapshotRequest, call: HostCall) throws {
        self.vm = vm
        self.qmp = qmp
        do {
            let live = try QEMUBlockGraph.disks(qmp)
            disks = try vm.disks.map { registered in
                let path = URL(fileURLWithPath: registered.path).standardizedFileURL.resolvingSymlinksInPath().path
                guard let disk = live.first(where: { $0.file == registered.path || URL(fileURLWithPath: $0.file).resolvingSymlinksInPath().path == path }) else {
                    throw PluginError(.notFound, "VM \(vm.name): disk \(registered.path) is not attached to the QEMU at \(qmp.path) "
                        + "(it has \(live.map(\.file).joined(separator: ", "))); register the VM again with `dpm vm remove` and `dpm vm add --qmp`")
                }
                return disk
            }
            if request.options?["ignore_scratch_space"]?.boolValue != true {
                try ScratchSpace.check(vm: vm.name, paths: disks.map(\.file), sizes: disks.map(\.virtualSize),
                                       churnRate: request.options?["churn_rate"]?.numberValue ?? 0.1,
                                       backups: Int(request.options?["concurrent_backups"]?.numberValue ?? 1))
            }
        } catch {
            qmp.close()
            throw error
        }
        let names = FleeceNames(vmID: vm.id, stateDirectory: try call.stateDirectory())
        let leftovers = PointInTimeView.clear(qmp: qmp, names: names, disks: disks)
        guard leftovers.isEmpty else {
            qmp.close()
            throw PluginError(.transient, "VM \(vm.name): an earlier backup left objects dpm cannot remove: \(leftovers.joined(separator: "; "))")
        }
        view = PointInTimeView(qmp: qmp, names: names, disks: disks)
        let instance = TrackingToken.instance(of: qmp.peerProcessID)
        do {
            tracker = try ChangeTracker(qmp: qmp, names: names, disks: disks, previousToken: request.previousToken, instance: instance)
        } catch {
            qmp.close()
            throw error
        }
        let outcome: Quiescer.Outcome
        do {
            try view.prepare()
            let tracker = self.tracker, view = self.view
            outcome = try Quiescer(vm: vm, qmp: qmp, timeouts: Quiescer.Timeouts(config: call.config)).takePoint {
                try view.takePoint(extra: tracker.transactionActions)
                tracker.started = true
            }
            clients = try view.open(bitmaps: tracker.plans.map(\.previous))
            for (client, disk) in zip(clients, disks) where client.size != disk.virtualSize {
                throw PluginError(.corrupt, "the NBD export of \(disk.file) is \(client.size) bytes but the disk is \(disk.virtualSize)")
            }
            TestPoint.hit("running.exported")
        } catch {
            _ = view.close()
            _ = tracker.rollback()
            qmp.close()
            throw error
        }
        notes = outcome.notes
        let diskDescriptions: [JSONValue] = disks.map { disk in
            .object(["path": .string(disk.file), "format": .string(disk.format.rawValue), "virtual_size": WireJSON.number(disk.virtualSize),
                     "block_size": WireJSON.number(disk.clusterSize), "node": .string(disk.node)])
        }
        var state: [String: JSONValue] = [
            "id": .string(vm.id), "name": .string(vm.name), "host": .string(vm.host), "storage": .string(vm.storage),
            "cluster": vm.cluster.map { .string($0) } ?? .null, "disks": .array(diskDescriptions), "state": .string("running"),
            "qemu": .object(["instance": .string(instance), "version": .string(qmp.version), "qmp": .string(qmp.path)]),
            "online": .bool(outcome.online),
        ]
        if let frozen = outcome.frozenMs { state["frozen_ms"] = .number(Double(frozen)) }
        description = SnapshotDescription(
            datasource: vm.id, consistency: outcome.consistency, reason: outcome.reason, pauseMs: outcome.pauseMs,
            streams: disks.enumerated().map { StreamDescription(name: "disk\($0.offset)", kind: .block, size: $0.element.virtualSize) },
            metadata: .object(["vm": .object(state)]))
    }

    func extents(stream: Int, call: HostCall) throws -> [Extent] {
        let disk = disks[stream]
        if disk.format == .vhdx {
            do {
                return try DiskImageOpener.open(path: disk.file, format: .vhdx).allocationMap()
            } catch {
                notes.append("disk\(stream) (\(disk.file)): dpm's VHDX reader could not map the live file (\(error)); every block was read")
            }
        }
        let statuses = try clients[stream].blockStatus(context: "base:allocation", offset: 0, length: disk.virtualSize)
        var extents: [Extent] = []
        for status in statuses {
            let flag: Extent.Flag = status.flags & NBDProtocol.stateZero != 0 ? .zero : .data
            if let last = extents.last, last.flag == flag, last.end == status.offset {
                extents[extents.count - 1].length += status.length
            } else {
                extents.append(Extent(offset: status.offset, length: status.length, flag: flag))
            }
        }
        return extents
    }

    /// The dirty ranges of the previous point's bitmap; nil when it cannot be trusted.
    func changes(stream: Int, since token: String, call: HostCall) throws -> [Extent]? {
        guard let context = tracker.changesContext(stream, since: token) else {
            if let why = tracker.plans[stream].untrusted { notes.append(why) }
            return nil
        }
        let size = disks[stream].virtualSize
        return try clients[stream].blockStatus(context: context, offset: 0, length: size)
            .filter { $0.flags & NBDProtocol.stateDirty != 0 }
            .map { Extent(offset: $0.offset, length: $0.length, flag: .data) }
    }

    func read(stream: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try clients[stream].read(offset: offset, into: buffer)
    }

    /// Tears the view down and commits or rolls back the bitmaps. Problems become notes
    /// (the data read is fine, and the next backup clears what is left).
    func finish(committed: Bool, call: HostCall) throws -> SnapshotFinish {
        guard !finished else { return SnapshotFinish() }
        finished = true
        var notes = self.notes + tracker.notes
        let leftovers = view.close()
        if !leftovers.isEmpty {
            notes.append("VM \(vm.name): cleaning up after the backup left \(leftovers.joined(separator: "; ")); the next backup removes it")
        }
        var token: String?
        if committed {
            let result = tracker.commit()
            token = result.token
            notes += result.problems
        } else {
            notes += tracker.rollback()
        }
        qmp.close()
        return SnapshotFinish(token: token, notes: notes.isEmpty ? nil : notes)
    }
}
