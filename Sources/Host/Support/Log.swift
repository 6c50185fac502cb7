import Foundation
import PluginAPI

/// The host's log: one line per message on standard error.
///
/// Under systemd (`JOURNAL_STREAM` set) lines carry the `<N>` syslog priority prefix that
/// journald understands; elsewhere they carry a level word. `DPM_LOG_LEVEL`
/// (debug, info, warning, error) sets the threshold; the default is warning, so commands
/// stay quiet unless something needs attention.
public enum Log {
    nonisolated(unsafe) public static var threshold: LogLevel = {
        switch ProcessInfo.processInfo.environment["DPM_LOG_LEVEL"]?.lowercased() {
        case "debug": return .debug
        case "info": return .info
        case "error": return .error
        default: return .warning
        }
    }()

    static let journald = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    private static let lock = NSLock()

    public static func write(_ level: LogLevel, _ message: String, source: String? = nil) {
        guard level.rawValue >= threshold.rawValue else { return }
        let origin = source.map { "[\($0)] " } ?? ""
        let line: String
        if journald {
            let priority = [7, 6, 4, 3][Int(level.rawValue)]
            line = "<\(priority)>\(origin)\(message)\n"
        } else {
            let word = ["debug", "info", "warning", "error"][Int(level.rawValue)]
            line = "dpm: \(word): \(origin)\(message)\n"
        }
        lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        lock.unlock()
    }

    public static func debug(_ message: String) { write(.debug, message) }
    public static func info(_ message: String) { write(.info, message) }
    public static func warning(_ message: String) { write(.warning, message) }
    public static func error(_ message: String) { write(.error, message) }
}
