import Foundation

/// One job running in its own process (`dpm worker JOB`), so that a provider that traps or
/// hangs fails only that job.
final class WorkerProcess {
    let job: ScheduledJob
    let jobID: Int64
    let process: Process
    let started: Date

    init(job: ScheduledJob, jobID: Int64, executable: String, dataDirectory: DataDirectory) throws {
        self.job = job
        self.jobID = jobID
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["worker", String(jobID), "--data-dir", dataDirectory.path]
        process.standardInput = FileHandle.nullDevice
        started = Date()
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// How the worker ended, in words, for the job's message when the worker could not say.
    var endReason: String {
        switch process.terminationReason {
        case .uncaughtSignal:
            let signal = process.terminationStatus
            let name = signal < NSIG ? String(cString: strsignal(signal)) : "signal \(signal)"
            return "the worker was killed by signal \(signal) (\(name)); the provider crashed or was stopped"
        case .exit:
            return "the worker exited with status \(process.terminationStatus)"
        @unknown default:
            return "the worker ended"
        }
    }

    func terminate() { if process.isRunning { kill(process.processIdentifier, SIGTERM) } }
    func kill9() { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}
