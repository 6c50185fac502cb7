import CLinux
import Foundation
import PluginAPI

/// Guarantees that a guest dpm froze is thawed, and a VM dpm paused is resumed, whatever
/// happens to the backup: an error, a timeout, or the backup process dying (even by
/// SIGKILL, which no handler sees).
///
/// It is a forked process (see CLinux/watchdog.h) that holds one end of a socket pair. The
/// backup disarms it after undoing the freeze or pause itself; if the backup dies, the
/// kernel closes the other end and the watchdog connects to the socket and sends the undo
/// commands; if the backup hangs past `deadline`, the watchdog does the same.
///
/// Because a QMP socket serves one client at a time, the watchdog's QMP connection is
/// accepted only once the backup's own connection has closed, which is what happens when
/// the backup dies.
final class ResumeWatchdog {
    /// What the watchdog does when it fires.
    enum Undo {
        /// `guest-fsfreeze-thaw` to the guest agent at this socket, after the handshake that
        /// skips stale replies (see `GuestAgentClient`).
        case thaw(agentSocket: String)
        /// `qmp_capabilities` then `cont` to QEMU at this socket.
        case resume(qmpSocket: String)

        var socket: String {
            switch self { case .thaw(let path), .resume(let path): return path }
        }

        /// The lines to send and, for the guest agent, the text of the handshake's reply
        /// (the sync id and '}'), before which every reply is stale.
        func script(syncID: Int) -> (lines: [UInt8], firstReply: String?) {
            switch self {
            case .thaw:
                let sync = "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":\(syncID)}}\n"
                return ([0xFF] + Array(sync.utf8) + Array("{\"execute\":\"guest-fsfreeze-thaw\"}\n".utf8), "\(syncID)}")
            case .resume:
                return (Array("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"cont\"}\n".utf8), nil)
            }
        }
    }

    let undo: Undo
    /// When the watchdog fires on its own, counted from `armed`.
    let deadline: TimeInterval
    let armed: Date
    private var pid: pid_t = -1
    private var armFD: Int32 = -1

    /// Forks the watchdog.
    /// - Parameters:
    ///   - deadline: seconds after which the watchdog undoes the freeze or pause even though
    ///     the backup is alive (it must have hung).
    ///   - retry: seconds the watchdog keeps trying to deliver once it fires.
    init(undo: Undo, deadline: TimeInterval, retry: TimeInterval = 30) throws {
        self.undo = undo
        self.deadline = deadline
        armed = Date()
        var fd: Int32 = -1
        let script = undo.script(syncID: Int.random(in: 1_000_000_000...2_000_000_000))
        let child = undo.socket.withCString { path in
            script.lines.withUnsafeBufferPointer { lines in
                lines.withMemoryRebound(to: CChar.self) { text in
                    func spawn(_ firstReply: UnsafePointer<CChar>?) -> Int32 {
                        dpm_watchdog_spawn(path, text.baseAddress, text.count, firstReply, ResumeWatchdog.milliseconds(deadline),
                                           ResumeWatchdog.milliseconds(retry), &fd)
                    }
                    guard let marker = script.firstReply else { return spawn(nil) }
                    return marker.withCString { spawn($0) }
                }
            }
        }
        guard child > 0 else {
            throw PluginError(.io, "cannot start the watchdog that would undo a freeze or pause (\(String(cString: strerror(errno)))); nothing was frozen or paused")
        }
        pid = child
        armFD = fd
    }

    deinit { fire() }

    /// Seconds as the C side's int milliseconds, clamped to [0, 1 day].
    static func milliseconds(_ seconds: TimeInterval) -> Int32 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int32(min(seconds, 86_400) * 1000)
    }

    /// Whether the deadline has passed, so the watchdog may already have undone the freeze
    /// or pause: anything done afterwards cannot count on it.
    var mayHaveFired: Bool { Date().timeIntervalSince(armed) >= deadline }

    /// The freeze or pause was undone: the watchdog exits without doing anything.
    func disarm() {
        guard armFD >= 0 else { return }
        var byte: UInt8 = 0x44  // 'D'; the watchdog may be gone already (it fired): no SIGPIPE
        _ = send(armFD, &byte, 1, Int32(MSG_NOSIGNAL))
        Glibc.close(armFD)
        armFD = -1
        reap(within: 5)
    }

    /// The backup could not undo the freeze or pause itself: the watchdog does it now.
    /// Waits up to `wait` seconds for it to finish.
    func fire(wait: TimeInterval = 0) {
        guard armFD >= 0 else { return }
        Glibc.close(armFD)
        armFD = -1
        reap(within: wait)
    }

    /// Collects the child's exit status so it does not linger as a zombie. Another part of
    /// the process may have reaped it already (ECHILD); that is fine.
    private func reap(within seconds: TimeInterval) {
        guard pid > 0 else { return }
        let until = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        repeat {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && errno == ECHILD) { pid = -1; return }
            usleep(2_000)
        } while Date() < until
    }
}
