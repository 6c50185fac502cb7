import Foundation
import Glibc

/// Test instrumentation for crash safety: with `DPM_CRASH_AT=NAME:N` in the environment,
/// the N-th time the process reaches the point NAME it kills itself with SIGKILL, as a
/// power cut would. Without the variable, `hit` only costs a dictionary lookup.
public enum CrashPoint {
    nonisolated(unsafe) static let target: (name: String, count: Int)? = {
        guard let value = ProcessInfo.processInfo.environment["DPM_CRASH_AT"],
              let colon = value.lastIndex(of: ":"), let count = Int(value[value.index(after: colon)...]) else { return nil }
        return (String(value[..<colon]), count)
    }()
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    private static let lock = NSLock()

    public static func hit(_ name: String) {
        guard let target, target.name == name else { return }
        lock.lock()
        counts[name, default: 0] += 1
        let reached = counts[name] == target.count
        lock.unlock()
        if reached { kill(getpid(), SIGKILL) }
    }
}
