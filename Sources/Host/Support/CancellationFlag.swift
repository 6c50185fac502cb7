import Foundation

/// A flag one thread raises and others check: how a job learns it should stop.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    public init() {}

    public func cancel() {
        lock.lock(); raised = true; lock.unlock()
    }

    public var isCancelled: Bool {
        lock.lock(); defer { lock.unlock() }
        return raised
    }

    public func check() throws {
        if isCancelled { throw HostError(.cancelled, "the job was cancelled") }
    }

    /// A flag raised by SIGTERM or SIGINT, for worker processes and long CLI commands.
    public static func onTerminationSignals() -> CancellationFlag {
        let flag = CancellationFlag()
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { flag.cancel() }
            source.resume()
            retainedSources.append(source)
        }
        return flag
    }

    nonisolated(unsafe) private static var retainedSources: [DispatchSourceSignal] = []
}
