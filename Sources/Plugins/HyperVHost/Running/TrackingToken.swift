import Foundation
import PluginAPI

/// The change-tracking token of a running-VM recovery point: which dirty bitmap, on which
/// disk, records the writes made since the point, and which QEMU process held it.
///
/// Text form: `qemu-cbt-v1:` followed by JSON,
/// `{"instance":"pid:1234:start:567890","disks":[{"file":"/vm/a.vhdx","node":"disk0","bitmap":"dpm-0a1b2c3d-g7","persistent":false}]}`.
/// Disks are matched by image file, since node names may change when QEMU restarts. A token
/// that does not parse is simply not trusted: the next backup hashes instead.
struct TrackingToken: Codable, Equatable {
    struct Disk: Codable, Equatable {
        var file: String
        var node: String
        var bitmap: String
        var persistent: Bool
    }

    static let prefix = "qemu-cbt-v1:"

    var instance: String
    var disks: [Disk]

    var text: String {
        let disks = self.disks.map { disk -> JSONValue in
            .object(["file": .string(disk.file), "node": .string(disk.node), "bitmap": .string(disk.bitmap), "persistent": .bool(disk.persistent)])
        }
        let body = (try? WireJSON.encode(.object(["instance": .string(instance), "disks": .array(disks)]))) ?? []
        return TrackingToken.prefix + String(decoding: body, as: UTF8.self)
    }

    /// Parses a token; nil for another provider's token, another version, or damage.
    init?(text: String) {
        guard text.hasPrefix(TrackingToken.prefix),
              let json = WireJSON.decode(Array(text.utf8.dropFirst(TrackingToken.prefix.utf8.count))),
              let instance = json["instance"]?.stringValue, let list = json["disks"]?.arrayValue else { return nil }
        var disks: [Disk] = []
        for entry in list {
            guard let file = entry["file"]?.stringValue, let node = entry["node"]?.stringValue,
                  let bitmap = entry["bitmap"]?.stringValue else { return nil }
            disks.append(Disk(file: file, node: node, bitmap: bitmap, persistent: entry["persistent"]?.boolValue ?? false))
        }
        self.instance = instance
        self.disks = disks
    }

    init(instance: String, disks: [Disk]) {
        self.instance = instance
        self.disks = disks
    }

    /// Identifies one QEMU process: its pid and its start time (clock ticks after boot, from
    /// /proc/PID/stat), so that a restarted QEMU, even one that got the same pid, differs.
    /// "unknown" when the kernel does not say.
    static func instance(of pid: pid_t?) -> String {
        guard let pid, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return "unknown" }
        // Fields after the command name start at field 3 (state); starttime is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return "unknown" }
        return "pid:\(pid):start:\(fields[19])"
    }
}
