import Foundation
import Glibc

/// Test instrumentation for crash safety and races:
/// - `DPM_CRASH_AT=NAME:N`: the N-th time the process reaches the point NAME it kills itself
///   with SIGKILL, as a power cut would;
/// - `DPM_PAUSE_AT=NAME:SECONDS`: the first time it reaches NAME it sleeps, so a test can
///   run something else (a gc) in the middle of a backup. With `DPM_PAUSE_FILE=PATH` as well,
///   it creates PATH when the pause starts and goes on as soon as PATH is removed (after
///   SECONDS at most): the test knows when the process is paused and ends the pause itself.
/// Without the variables, `hit` costs one comparison.
public enum CrashPoint {
    nonisolated(unsafe) static let target: (name: String, count: Int)? = {
        guard let value = ProcessInfo.processInfo.environment["DPM_CRASH_AT"],
              let colon = value.lastIndex(of: ":"), let count = Int(value[value.index(after: colon)...]) else { return nil }
        return (String(value[..<colon]), count)
    }()
    nonisolated(unsafe) static let pause: (name: String, seconds: Double)? = {
        guard let value = ProcessInfo.processInfo.environment["DPM_PAUSE_AT"],
              let colon = value.lastIndex(of: ":"), let seconds = Double(value[value.index(after: colon)...]) else { return nil }
        return (String(value[..<colon]), seconds)
    }()
    static let pauseFile = ProcessInfo.processInfo.environment["DPM_PAUSE_FILE"]
    nonisolated(unsafe) private static var paused = false
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    private static let lock = NSLock()

    public static func hit(_ name: String) {
        if let pause, pause.name == name {
            lock.lock()
            let first = !paused
            paused = true
            lock.unlock()
            if first { wait(pause.seconds) }
        }
        guard let target, target.name == name else { return }
        lock.lock()
        counts[name, default: 0] += 1
        let reached = counts[name] == target.count
        lock.unlock()
        if reached { kill(getpid(), SIGKILL) }
    }

    private static func wait(_ seconds: Double) {
        guard let pauseFile, FileManager.default.createFile(atPath: pauseFile, contents: nil) else {
            Thread.sleep(forTimeInterval: seconds)
            return
        }
        let end = Date().addingTimeInterval(seconds)
        while FileSystem.exists(pauseFile) && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
    }
}
