import Foundation

/// Test instrumentation, read from the same variables as the host's crash points:
/// `DPM_CRASH_AT=NAME:N` kills the process with SIGKILL the N-th time it reaches NAME;
/// `DPM_PAUSE_AT=NAME:SECONDS` sleeps there once. Tests use them to kill a backup while the
/// guest is frozen or the VM paused (`running.frozen`, `running.paused`), and to keep a
/// backup's exports open while they write to the VM (`running.exported`).
enum TestPoint {
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    nonisolated(unsafe) private static var paused: Set<String> = []
    private static let lock = NSLock()

    static func hit(_ name: String) {
        let environment = ProcessInfo.processInfo.environment
        if let value = environment["DPM_PAUSE_AT"], let (target, seconds) = parse(value), target == name {
            lock.lock()
            let first = paused.insert(name).inserted
            lock.unlock()
            if first { Thread.sleep(forTimeInterval: seconds) }
        }
        if let value = environment["DPM_CRASH_AT"], let (target, count) = parse(value), target == name {
            lock.lock()
            counts[name, default: 0] += 1
            let reached = counts[name] == Int(count)
            lock.unlock()
            if reached { kill(getpid(), SIGKILL) }
        }
    }

    private static func parse(_ value: String) -> (String, Double)? {
        guard let colon = value.lastIndex(of: ":"), let number = Double(value[value.index(after: colon)...]) else { return nil }
        return (String(value[..<colon]), number)
    }
}
