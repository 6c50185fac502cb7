import Foundation
import PluginAPI

/// QEMU's side of a guest agent's channel, from QMP `query-chardev`, so that an agent that
/// cannot answer is reported with its real cause instead of a timeout.
///
/// Each entry is `{"label": "qga0", "filename": F, "frontend-open": B}`. For a unix-socket
/// server chardev F is `disconnected:unix:PATH,server=on` while no client is connected and
/// `unix:PATH,server=on` while one is (QEMU serves one client at a time; a second client's
/// connect succeeds in the listen backlog but nothing answers it). `frontend-open` is
/// whether the guest has the virtio-serial port open, that is whether qemu-ga runs.
struct AgentChannel {
    let label: String
    let connected: Bool
    let guestOpen: Bool

    /// The chardev of `qmp`'s QEMU that serves the unix socket at `path`; nil when there is
    /// none (the socket belongs to something else) or QEMU does not say.
    static func find(qmp: QMPClient, socket path: String) -> AgentChannel? {
        guard let list = try? qmp.execute("query-chardev").arrayValue else { return nil }
        let wanted = URL(fileURLWithPath: path).standardizedFileURL.path
        for entry in list {
            guard var name = entry["filename"]?.stringValue, let label = entry["label"]?.stringValue else { continue }
            let disconnected = name.hasPrefix("disconnected:")
            if disconnected { name.removeFirst("disconnected:".count) }
            guard name.hasPrefix("unix:") else { continue }
            let socket = String(name.dropFirst("unix:".count).prefix { $0 != "," })
            guard URL(fileURLWithPath: socket).standardizedFileURL.path == wanted else { continue }
            return AgentChannel(label: label, connected: !disconnected, guestOpen: entry["frontend-open"]?.boolValue ?? true)
        }
        return nil
    }

    /// Why a client connecting now would get no answer, or nil when nothing stands in the way.
    func obstacle(socket path: String) -> String? {
        if connected {
            return "another client holds the guest agent channel \(label) at \(path) (QEMU serves one client at a time); "
                + "close that connection, or make sure nothing else (a script, libvirt) uses this socket"
        }
        if !guestOpen {
            return "the guest has not opened its agent port (chardev \(label)): qemu-ga is not running in the guest, or the guest is still starting"
        }
        return nil
    }
}
