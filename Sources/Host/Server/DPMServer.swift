import Foundation

/// `dpm server`: the foreground daemon that runs the scheduler and every job in a worker
/// process.
///
/// - Only one server runs per data directory (`locks/server.lock`); a second is refused.
/// - Each tick it reaps finished workers (recording failures with their reason: the signal
///   that killed the worker, or the timeout), asks the scheduler what is due, and starts
///   what the limits allow.
/// - On SIGTERM or SIGINT it starts nothing new and lets running jobs finish; after the
///   shutdown grace it asks them to stop (SIGTERM), which checkpoints a backup: the chunks it
///   wrote stay and the next backup deduplicates against them.
/// - Logs are one line per event on standard error, with syslog priorities under systemd.
public final class DPMServer {
    public struct Options {
        public var clock = ServerClock.wall
        /// Seconds between ticks (wall time).
        public var tick: TimeInterval = 1
        /// A job running longer than this (wall seconds) is killed and failed.
        public var jobTimeout: TimeInterval = 12 * 3600
        /// How long a shutdown waits for running jobs before asking them to stop.
        public var shutdownGrace: TimeInterval = 300
        /// The `dpm` executable that runs workers.
        public var executable: String

        public init(executable: String) { self.executable = executable }
    }

    let service: ProtectionService
    let options: Options
    let scheduler: Scheduler
    let stop = CancellationFlag()
    private var workers: [WorkerProcess] = []

    public init(service: ProtectionService, options: Options) throws {
        self.service = service
        self.options = options
        scheduler = Scheduler(policy: try SchedulerPolicy(settings: service.settings))
    }

    /// Runs until SIGTERM or SIGINT; returns the exit status.
    public func run() throws -> Int32 {
        let data = service.dataDirectory
        try data.create()
        let lockPath = data.locksDirectory + "/server.lock"
        guard let lock = try FileLock.acquire(lockPath, .exclusive, wait: false) else {
            throw HostError(.busy, "another dpm server is running on \(data.path) (\(FileLock.holder(lockPath))); stop it first, or use another --data-dir")
        }
        lock.describeHolder("pid \(getpid())")
        defer { withExtendedLifetime(lock) {} }
        let signals = CancellationFlag.onTerminationSignals()
        let catalog = try service.catalog()
        try recoverAbandonedJobs(catalog)
        let epoch = try serverEpoch(catalog)
        Log.write(.info, "server started on \(data.path) (pid \(getpid()), epoch \(CatalogTime.string(epoch))"
                  + (options.clock.scale == 1 ? ")" : ", test clock ×\(options.clock.scale))"))
        var stopping: Date?
        while true {
            reap(catalog)
            if signals.isCancelled && stopping == nil {
                stopping = Date()
                Log.write(.info, "stopping: waiting for \(workers.count) running job(s) to finish")
            }
            if let since = stopping {
                if workers.isEmpty { break }
                if Date().timeIntervalSince(since) > options.shutdownGrace {
                    for worker in workers { worker.terminate() }
                }
                if Date().timeIntervalSince(since) > options.shutdownGrace + 60 {
                    for worker in workers { worker.kill9() }
                }
            } else {
                try schedule(catalog, epoch: epoch)
            }
            Thread.sleep(forTimeInterval: options.tick)
        }
        Log.write(.info, "server stopped")
        return 0
    }

    /// Jobs marked running by a server (or a command) that died are failed, so nothing shows
    /// as running forever; scheduled ones run again at their next slot.
    func recoverAbandonedJobs(_ catalog: Catalog) throws {
        try catalog.reapDeadJobs()
    }

    func serverEpoch(_ catalog: Catalog) throws -> Date {
        if let epoch = try catalog.scheduleStates()["server:epoch"]?.lastSlot { return epoch }
        let now = options.clock.now()
        try catalog.setScheduleState("server:epoch", .init(lastSlot: now))
        return now
    }

    func input(_ catalog: Catalog, epoch: Date) throws -> (Scheduler.Input, [String: String]) {
        var input = Scheduler.Input(groups: try catalog.groups(), serverEpoch: epoch)
        input.states = try catalog.scheduleStates()
        input.hasRecoveryPoint = try catalog.dataSourcesWithRecoveryPoints()
        input.inconsistent = try catalog.inconsistentDataSources()
        let hosts = try catalog.dataSourceHosts()
        input.hosts = hosts
        return (input, hosts)
    }

    func schedule(_ catalog: Catalog, epoch: Date) throws {
        let now = options.clock.now()
        let (input, hosts) = try input(catalog, epoch: epoch)
        let due = scheduler.due(input, now: now)
        for job in scheduler.startable(due, running: workers.map(\.job), hosts: hosts) {
            let mode: String? = job.kind.isBackup ? job.kind.rawValue : nil
            let id = try catalog.createScheduledJob(job, mode: mode)
            do {
                let worker = try WorkerProcess(job: job, jobID: id, executable: options.executable, dataDirectory: service.dataDirectory)
                try catalog.setJobPid(id, worker.process.processIdentifier)
                workers.append(worker)
                Log.write(.info, "job \(id) started: \(job)")
            } catch {
                try catalog.finishJob(id, state: "failed", message: "could not start a worker: \(error)")
                record(job, succeeded: false, transient: true, catalog: catalog)
            }
        }
    }

    func reap(_ catalog: Catalog) {
        var still: [WorkerProcess] = []
        for worker in workers {
            if worker.isRunning {
                if Date().timeIntervalSince(worker.started) > options.jobTimeout {
                    worker.kill9()
                    worker.process.waitUntilExit()
                    try? catalog.finishJob(worker.jobID, state: "failed",
                                           message: "timed out after \(Int(options.jobTimeout)) s; the worker was killed (the provider hung)")
                    Log.write(.error, "job \(worker.jobID) timed out: \(worker.job)")
                    record(worker.job, succeeded: false, transient: false, catalog: catalog)
                    continue
                }
                still.append(worker)
                continue
            }
            let status = JobRunner.ExitStatus(rawValue: worker.process.terminationReason == .exit ? worker.process.terminationStatus : -1)
            if worker.process.terminationReason == .uncaughtSignal || status == nil {
                try? catalog.finishJob(worker.jobID, state: "failed", message: worker.endReason)
                Log.write(.error, "job \(worker.jobID) failed: \(worker.endReason)")
            } else if let job = try? catalog.job(worker.jobID), job.state == "running" {
                try? catalog.finishJob(worker.jobID, state: status == .succeeded ? "succeeded" : "failed", message: worker.endReason)
            }
            let succeeded = status == .succeeded
            Log.write(succeeded ? .info : .warning, "job \(worker.jobID) \(succeeded ? "succeeded" : "failed"): \(worker.job)")
            record(worker.job, succeeded: succeeded, transient: status == .transient, catalog: catalog)
        }
        workers = still
    }

    func record(_ job: ScheduledJob, succeeded: Bool, transient: Bool, catalog: Catalog) {
        let states = (try? catalog.scheduleStates()) ?? [:]
        let updates = scheduler.afterRun(job, succeeded: succeeded, transient: transient, state: states[job.key] ?? .init(), now: options.clock.now())
        for (key, state) in updates { try? catalog.setScheduleState(key, state) }
    }
}
