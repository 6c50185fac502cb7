import Foundation
import Host

/// A progress bar on standard error, drawn only when it is a terminal; at most ten
/// redraws a second, so it costs nothing on the data path.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled: Bool
    private let lock = NSLock()
    private var lastDraw = Date.distantPast
    private let started = Date()

    init(_ label: String, output: Output) {
        self.label = label
        enabled = output.showsProgress
    }

    /// A progress callback, or nil when nothing would be drawn.
    var callback: ((UInt64, UInt64) -> Void)? {
        enabled ? { [self] done, total in update(done, total) } : nil
    }

    func update(_ done: UInt64, _ total: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || done == total else { return }
        lastDraw = now
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = Double(done) / max(0.001, now.timeIntervalSince(started))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\r%@ [%@] %3.0f%% %@/%@ %@/s ", label, bar, fraction * 100,
                          ByteFormat.string(done), ByteFormat.string(total), ByteFormat.string(UInt64(rate)))
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Clears the line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
