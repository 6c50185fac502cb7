import Foundation
import PluginAPI

/// The scratch space a backup needs beside a VM's disks (behaviour 6): at least
/// *initial disk size × churn rate × backups*, on each volume that holds disks.
///
/// The host supplies the churn rate it observed (new bytes per backup ÷ disk size, over
/// recent recovery points) and the number of backups that may run at once on the volume.
enum ScratchSpace {
    struct Need: Equatable {
        var volume: String
        var diskBytes: UInt64
        var required: UInt64
        var free: UInt64
    }

    /// The seed's formula.
    static func required(diskBytes: UInt64, churnRate: Double, backups: Int) -> UInt64 {
        UInt64((Double(diskBytes) * max(0, churnRate) * Double(max(1, backups))).rounded(.up))
    }

    /// Computes the need per volume for disks at `paths` with the given virtual sizes.
    static func needs(paths: [String], sizes: [UInt64], churnRate: Double, backups: Int) -> [Need] {
        var byDevice: [UInt64: Need] = [:]
        for (path, size) in zip(paths, sizes) {
            let directory = (path as NSString).deletingLastPathComponent
            var status = stat()
            var volume = statvfs()
            guard stat(directory, &status) == 0, statvfs(directory, &volume) == 0 else { continue }
            let device = UInt64(status.st_dev)
            var need = byDevice[device] ?? Need(volume: directory, diskBytes: 0, required: 0,
                                                 free: UInt64(volume.f_bavail) * UInt64(volume.f_frsize))
            need.diskBytes += size
            need.required = required(diskBytes: need.diskBytes, churnRate: churnRate, backups: backups)
            byDevice[device] = need
        }
        return byDevice.values.sorted { $0.volume < $1.volume }
    }

    /// Refuses a backup when a volume lacks the space, with the numbers and the override.
    static func check(vm: String, paths: [String], sizes: [UInt64], churnRate: Double, backups: Int) throws {
        for need in needs(paths: paths, sizes: sizes, churnRate: churnRate, backups: backups) where need.free < need.required {
            throw PluginError(.noSpace, "scratch space: the volume holding \(need.volume) has \(format(need.free)) free, but backing up \(vm) "
                + "needs \(format(need.required)) there (initial disk size \(format(need.diskBytes)) × churn rate "
                + String(format: "%.1f%%", churnRate * 100) + " × \(max(1, backups)) backup\(backups == 1 ? "" : "s")); "
                + "free space on that volume, or back up anyway with --ignore-scratch-space")
        }
    }

    static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
