import Foundation
import PluginAPI

/// A point-in-time view of a running VM's disks by image fleecing, exported over NBD.
///
/// For each disk: a qcow2 overlay (beside the disk, the scratch space of behaviour 6) whose
/// backing is the live disk node, and a `blockdev-backup sync=none` job from the disk into
/// the overlay. From the instant of the transaction that starts the jobs, QEMU copies a
/// block's old content into the overlay before the guest overwrites it, so reading the
/// overlay gives the disks as they were at that instant. All disks start in one transaction:
/// the view is consistent across disks. Exports are read-only.
///
/// Order of work, and why:
/// 1. `clear` removes anything an earlier, interrupted backup of this VM left;
/// 2. `prepare` creates the overlays and starts the NBD server: slow steps, done before the
///    guest is frozen or paused;
/// 3. `takePoint` runs the transaction: the only step inside the freeze or pause;
/// 4. `open` exports the overlays and connects an NBD client to each;
/// 5. `close` tears everything down in dependency order: clients, exports, jobs, overlay
///    nodes, the NBD server, the overlay files. It is `clear` again, so it also works after
///    any partial failure, and it reports whatever it could not remove.
final class PointInTimeView {
    let qmp: QMPClient
    let names: FleeceNames
    let disks: [RunningDisk]
    private(set) var clients: [NBDClient] = []
    private var serverStarted = false

    init(qmp: QMPClient, names: FleeceNames, disks: [RunningDisk]) {
        self.qmp = qmp
        self.names = names
        self.disks = disks
    }

    /// Creates the overlays and starts dpm's NBD server.
    func prepare() throws {
        for (index, disk) in disks.enumerated() {
            guard disk.virtualSize % 512 == 0 else {
                throw PluginError(.unsupported, "disk \(disk.file) is \(disk.virtualSize) bytes, not a multiple of 512; QEMU cannot fleece it while the VM runs")
            }
            let file = names.overlayFile(index, besideDisk: disk.file)
            try qmp.run("blockdev-create", ["job-id": .string(names.createFileJob(index)),
                                            "options": .object(["driver": .string("file"), "filename": .string(file), "size": .number(0)])],
                        doing: "creating the scratch overlay \(file)")
            try qmp.awaitJob(names.createFileJob(index), doing: "creating the scratch overlay \(file)")
            try qmp.run("blockdev-add", ["driver": .string("file"), "node-name": .string(names.overlayFileNode(index)), "filename": .string(file)],
                        doing: "opening the scratch overlay \(file)")
            try qmp.run("blockdev-create", ["job-id": .string(names.createFormatJob(index)),
                                            "options": .object(["driver": .string("qcow2"), "file": .string(names.overlayFileNode(index)),
                                                                "size": WireJSON.number(disk.virtualSize)])],
                        doing: "formatting the scratch overlay \(file)")
            try qmp.awaitJob(names.createFormatJob(index), doing: "formatting the scratch overlay \(file)")
            try qmp.run("blockdev-add", ["driver": .string("qcow2"), "node-name": .string(names.overlayNode(index)),
                                         "file": .string(names.overlayFileNode(index)), "backing": .string(disk.node)],
                        doing: "attaching the scratch overlay \(file) above disk \(disk.device)")
        }
        try startServer()
    }

    private func startServer() throws {
        unlink(names.nbdSocket)
        let arguments: [String: JSONValue] = ["addr": .object(["type": .string("unix"), "data": .object(["path": .string(names.nbdSocket)])])]
        do {
            try qmp.execute("nbd-server-start", arguments)
        } catch let error as QMPClient.CommandError where error.message.contains("already running") {
            // Another tool's server, or one a killed dpm left without its socket file. QEMU
            // has one NBD server; dpm claims it only when nothing is exported through it.
            guard try QEMUBlockGraph.inventory(qmp).exports.isEmpty else {
                throw PluginError(.transient, "QEMU at \(qmp.path) already runs an NBD server with exports (another tool?); "
                    + "dpm needs QEMU's NBD server during a backup: let that tool finish, or stop its server (nbd-server-stop)")
            }
            try qmp.run("nbd-server-stop", doing: "stopping an idle NBD server")
            try qmp.run("nbd-server-start", arguments, doing: "starting dpm's NBD server on \(names.nbdSocket)")
        } catch let error as QMPClient.CommandError {
            throw PluginError(.io, "QEMU at \(qmp.path) refused to start an NBD server on \(names.nbdSocket): \(error.message)")
        }
        serverStarted = true
    }

    /// The point in time: one transaction with `extra` actions (dirty bitmaps) and a
    /// `blockdev-backup sync=none` job per disk. Atomic: all or nothing.
    func takePoint(extra: [JSONValue]) throws {
        let backups: [JSONValue] = disks.enumerated().map { index, disk in
            .object(["type": .string("blockdev-backup"), "data": .object([
                "job-id": .string(names.backupJob(index)), "device": .string(disk.node), "target": .string(names.overlayNode(index)),
                "sync": .string("none"), "filter-node-name": .string(names.filterNode(index)),
            ])])
        }
        try qmp.run("transaction", ["actions": .array(extra + backups)], doing: "the point-in-time transaction", timeout: 10)
    }

    /// Exports each overlay read-only (with the dirty bitmap of the previous point, when one
    /// is given) and connects an NBD client to it.
    func open(bitmaps: [String?]) throws -> [NBDClient] {
        for (index, disk) in disks.enumerated() {
            var export: [String: JSONValue] = ["type": .string("nbd"), "id": .string(names.exportID(index)),
                                               "node-name": .string(names.overlayNode(index)), "name": .string(names.exportName(index)),
                                               "writable": .bool(false)]
            if let bitmap = bitmaps[index] { export["bitmaps"] = .array([.string(bitmap)]) }
            try qmp.run("block-export-add", export, doing: "exporting the point-in-time view of \(disk.file) over NBD")
        }
        clients = try disks.indices.map { index in
            var contexts = ["base:allocation"]
            if let bitmap = bitmaps[index] { contexts.append("qemu:dirty-bitmap:" + bitmap) }
            return try NBDClient(socketPath: names.nbdSocket, export: names.exportName(index), metaContexts: contexts)
        }
        return clients
    }

    /// Tears the view down; returns what could not be removed (empty when clean).
    func close() -> [String] {
        for client in clients { client.close() }
        clients = []
        return PointInTimeView.clear(qmp: qmp, names: names, disks: disks, serverStarted: serverStarted)
    }

    /// Removes every export, job, node, server and scratch file of this VM's backups, in
    /// dependency order; each step runs whatever happened before. Idempotent.
    /// - Returns: what is left over (empty when clean).
    static func clear(qmp: QMPClient, names: FleeceNames, disks: [RunningDisk], serverStarted: Bool = false) -> [String] {
        var problems: [String] = []
        func attempt(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch { problems.append("\(what): \(error)") }
        }
        attempt("removing NBD exports") {
            for id in try QEMUBlockGraph.inventory(qmp).exports where names.isOurs(id) {
                _ = try? qmp.execute("block-export-del", ["id": .string(id), "mode": .string("hard")])
            }
            try waitUntil("NBD exports to close") { try QEMUBlockGraph.inventory(qmp).exports.allSatisfy { !names.isOurs($0) } }
        }
        attempt("ending block jobs") {
            for job in try qmp.execute("query-jobs").arrayValue ?? [] {
                guard let id = job["id"]?.stringValue, names.isOurs(id) else { continue }
                if job["status"]?.stringValue == "concluded" {
                    _ = try? qmp.execute("job-dismiss", ["id": .string(id)])
                } else if job["type"]?.stringValue == "backup" {
                    _ = try? qmp.execute("block-job-cancel", ["device": .string(id), "force": .bool(true)])
                } else {
                    _ = try? qmp.execute("job-cancel", ["id": .string(id)])
                }
            }
            try waitUntil("block jobs to end") {
                var pending = false
                for job in try qmp.execute("query-jobs").arrayValue ?? [] {
                    guard let id = job["id"]?.stringValue, names.isOurs(id) else { continue }
                    if job["status"]?.stringValue == "concluded" { _ = try? qmp.execute("job-dismiss", ["id": .string(id)]) }
                    pending = true
                }
                return !pending
            }
        }
        attempt("removing overlay nodes") {
            // Format nodes first, then the file nodes under them; the copy-before-write
            // filters went with their jobs.
            let ours = try QEMUBlockGraph.inventory(qmp).nodes.filter { names.isOurs($0) && !$0.contains("-cbw") }
            for node in ours.sorted(by: { ($0.contains("-fl") ? 0 : 1, $0) < ($1.contains("-fl") ? 0 : 1, $1) }) {
                try qmp.run("blockdev-del", ["node-name": .string(node)], doing: "removing node \(node)")
            }
        }
        if serverStarted || FileManager.default.fileExists(atPath: names.nbdSocket) {
            // The socket file is named for this VM: when it exists, the server is dpm's.
            do { try qmp.execute("nbd-server-stop") } catch {
                if serverStarted { problems.append("stopping dpm's NBD server on \(names.nbdSocket): \(error)") }
            }
            unlink(names.nbdSocket)
        }
        for directory in Set(disks.map { ($0.file as NSString).deletingLastPathComponent }) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where names.isOverlayFileName(name) {
                if unlink(directory + "/" + name) != 0 && errno != ENOENT {
                    problems.append("cannot remove scratch file \(directory)/\(name): \(String(cString: strerror(errno)))")
                }
            }
        }
        attempt("checking for leftovers") {
            let left = try QEMUBlockGraph.inventory(qmp)
            let ours = (left.nodes + left.exports + left.jobs).filter { names.isOurs($0) }
            if !ours.isEmpty { problems.append("QEMU at \(qmp.path) still has \(ours.joined(separator: ", "))") }
        }
        return problems
    }

    private static func waitUntil(_ what: String, seconds: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard Date() < deadline else { throw PluginError(.transient, "timed out waiting for \(what)") }
            usleep(2_000)
        }
    }
}
