import Foundation
import Host
import PluginAPI

/// `dpm server`, `dpm worker` (internal) and `dpm jobs list|show|cancel`.
enum ServerCommands {
    static let all = [server, worker, jobsList, jobsShow, jobsCancel]

    static let server = CommandDefinition(
        path: ["server"], summary: "Run the scheduler in the foreground; every job runs in its own worker process.", arguments: "",
        details: """
        Stops on SIGTERM or SIGINT after the running jobs finish (or, after the shutdown grace, checkpoint).
        Only one server runs per data directory. Logs go to standard error (journald priorities under systemd);
        see packaging/dpm.service. Settings: scheduler.max_jobs, scheduler.max_jobs_per_host, scheduler.off_peak,
        scheduler.retry_base, scheduler.time_zone, server.job_timeout, server.shutdown_grace.
        In test mode (DPM_TEST_MODE=1) --time-scale N runs the schedule N times faster from --time-anchor.
        """,
        options: [
            OptionSpec(name: "time-scale", value: "N", help: "test mode: scheduled time runs N times faster"),
            OptionSpec(name: "time-anchor", value: "ISO-TIME", help: "test mode: the instant the fast clock is anchored at"),
            OptionSpec(name: "tick", value: "SECONDS", help: "seconds between scheduling rounds (default 1)"),
        ]
    ) { invocation in
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            throw HostError(.internalError, "cannot find the dpm executable to start workers")
        }
        var options = DPMServer.Options(executable: executable)
        let settings = service.settings
        if let value = settings["server.job_timeout"] { options.jobTimeout = try Duration.parse(value, what: "server.job_timeout") }
        if let value = settings["server.shutdown_grace"] { options.shutdownGrace = try Duration.parse(value, what: "server.shutdown_grace") }
        if let value = invocation.arguments.value("tick") {
            guard let tick = Double(value), tick > 0 else { throw HostError(.usage, "--tick takes a number of seconds") }
            options.tick = tick
        }
        if let value = invocation.arguments.value("time-scale") {
            guard ProcessInfo.processInfo.environment["DPM_TEST_MODE"] == "1" else {
                throw HostError(.usage, "--time-scale is for tests only; set DPM_TEST_MODE=1")
            }
            guard let scale = Double(value), scale >= 1 else { throw HostError(.usage, "--time-scale takes a number ≥ 1") }
            let formatter = ISO8601DateFormatter()
            let anchor = try invocation.arguments.value("time-anchor").map { text -> Date in
                guard let date = formatter.date(from: text) else { throw HostError(.usage, "--time-anchor takes an ISO-8601 time") }
                return date
            } ?? Date()
            options.clock = ServerClock(anchor: anchor, scale: scale)
        }
        return try DPMServer(service: service, options: options).run()
    }

    static let worker = CommandDefinition(
        path: ["worker"], summary: "Run one job the server started (internal).", arguments: "JOB", positionals: 1...1
    ) { invocation in
        guard let id = Int64(invocation.positionals[0]) else { throw HostError(.usage, "JOB is a job number") }
        let service = try ProtectionService(dataDirectory: invocation.dataDirectory)
        return JobRunner(service: service).run(jobID: id, cancellation: CancellationFlag.onTerminationSignals()).rawValue
    }

    static func row(_ job: JobRecord) -> [String] {
        let progress = job.progressTotal > 0 ? String(format: "%3.0f%%", Double(job.progressDone) / Double(job.progressTotal) * 100) : ""
        return [String(job.id), job.kind, job.datasourceId ?? "-", job.state, progress,
                job.started.map { ISO8601DateFormatter().string(from: $0) } ?? "", job.message ?? ""]
    }

    static let jobsList = CommandDefinition(
        path: ["jobs", "list"], summary: "List recent jobs, running ones with their progress.", arguments: "",
        options: [
            OptionSpec(name: "state", value: "STATE", help: "only jobs in this state (running, succeeded, failed, cancelled)"),
            OptionSpec(name: "limit", value: "N", help: "at most N jobs (default 50)"),
        ]
    ) { invocation in
        let catalog = try Catalog(dataDirectory: invocation.dataDirectory)
        try catalog.reapDeadJobs()
        let jobs = try catalog.jobs(limit: try invocation.arguments.integer("limit") ?? 50, state: invocation.arguments.value("state"))
        if invocation.json { try invocation.output.emit(jobs) } else {
            invocation.output.table(["ID", "KIND", "DATASOURCE", "STATE", "PROGRESS", "STARTED", "MESSAGE"], jobs.map(row))
        }
        return 0
    }

    static func job(_ invocation: Invocation) throws -> (Catalog, JobRecord) {
        let catalog = try Catalog(dataDirectory: invocation.dataDirectory)
        guard let id = Int64(invocation.positionals[0]), let job = try catalog.job(id) else {
            throw HostError(.notFound, "no job \(invocation.positionals[0]); see `dpm jobs list`")
        }
        return (catalog, job)
    }

    static let jobsShow = CommandDefinition(
        path: ["jobs", "show"], summary: "Show one job: state, progress, message and result.", arguments: "ID", positionals: 1...1
    ) { invocation in
        let (_, job) = try job(invocation)
        if invocation.json { try invocation.output.emit(job) } else {
            let out = invocation.output
            out.line("job \(job.id): \(job.kind) \(job.datasourceId ?? "") — \(job.state)")
            if job.progressTotal > 0 {
                out.line("  progress: \(ByteFormat.string(job.progressDone)) of \(ByteFormat.string(job.progressTotal))")
            }
            if let message = job.message { out.line("  \(message)") }
            if let result = job.result { out.line("  result: \(result)") }
        }
        return 0
    }

    static let jobsCancel = CommandDefinition(
        path: ["jobs", "cancel"], summary: "Cancel a running job (its worker stops at the next chunk).", arguments: "ID", positionals: 1...1
    ) { invocation in
        let (catalog, job) = try job(invocation)
        guard job.state == "running", let pid = job.pid else {
            throw HostError(.invalid, "job \(job.id) is \(job.state), not running")
        }
        try catalog.requestCancel(job.id)
        guard kill(Int32(pid), SIGTERM) == 0 else {
            try catalog.finishJob(job.id, state: "failed", message: "its process \(pid) is gone")
            throw HostError(.notFound, "job \(job.id)'s process \(pid) is gone; marked failed")
        }
        if invocation.json { try invocation.output.emit(["cancelled": job.id]) } else { invocation.output.line("cancelling job \(job.id)") }
        return 0
    }
}
