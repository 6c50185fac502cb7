import Foundation
import PluginAPI

/// Whether a VM is migrating, asked of its QEMU over QMP: an incoming migration leaves the
/// VM in run state `inmigrate`; an outgoing one shows in `query-migrate`. The answer of the
/// `datasource.state` command, which the host asks before a tape copy (behaviour 8: the
/// protection of migrating VMs does not go to tape).
struct MigrationProbe {
    /// `query-migrate` statuses of a migration still under way.
    static let activeStatuses: Set<String> = ["setup", "active", "pre-switchover", "device", "postcopy-active",
                                              "postcopy-paused", "postcopy-recover", "postcopy-recover-setup", "wait-unplug"]

    let vm: VMRecord

    func state() -> JSONValue {
        guard let qmp = vm.qmp else {
            return .object(["migrating": .bool(false), "state": .string("at rest")])
        }
        do {
            let client = try QMPClient(path: qmp, timeout: 5)
            defer { client.close() }
            let status = try client.status().status
            if status == "inmigrate" {
                return .object(["migrating": .bool(true), "state": .string("incoming migration (run state inmigrate)")])
            }
            let migration = try client.execute("query-migrate")["status"]?.stringValue ?? "none"
            if Self.activeStatuses.contains(migration) {
                return .object(["migrating": .bool(true), "state": .string("outgoing migration (\(migration))")])
            }
            return .object(["migrating": .bool(false), "state": .string(status)])
        } catch {
            // Not reachable: not known to migrate. The backup itself reports the reason.
            return .object(["migrating": .bool(false), "state": .string("unknown: \(error)")])
        }
    }
}
