import Foundation

/// Server-wide scheduling settings (from `scheduler.*` settings).
public struct SchedulerPolicy: Sendable {
    /// Jobs at once on this server.
    public var maxJobs = 4
    /// Jobs at once against one Hyper-V host.
    public var maxJobsPerHost = 2
    /// The off-peak window for replica creation, minutes after midnight (may wrap midnight).
    public var offPeak: (start: Int, end: Int)? = (22 * 60, 6 * 60)
    public var pruneTime = 30
    public var gcTime = 60
    /// Verify runs weekly, on this weekday (1 = Sunday … 7 = Saturday) and time.
    public var verifyWeekday = 1
    public var verifyTime = 3 * 60
    /// Retries of a transient failure, and the first back-off (doubling each time).
    public var maxAttempts = 3
    public var retryBase: TimeInterval = 60
    public var timeZone = TimeZone.current

    public init() {}

    /// Reads `scheduler.max_jobs`, `scheduler.max_jobs_per_host`, `scheduler.off_peak`
    /// (HH:MM-HH:MM or "none"), `scheduler.retry_base`, `scheduler.time_zone`.
    public init(settings: Settings) throws {
        if let value = settings["scheduler.max_jobs"] {
            guard let number = Int(value), number > 0 else { throw HostError(.invalid, "scheduler.max_jobs must be a positive number") }
            maxJobs = number
        }
        if let value = settings["scheduler.max_jobs_per_host"] {
            guard let number = Int(value), number > 0 else { throw HostError(.invalid, "scheduler.max_jobs_per_host must be a positive number") }
            maxJobsPerHost = number
        }
        if let value = settings["scheduler.off_peak"] {
            if value == "none" { offPeak = nil } else {
                let parts = value.split(separator: "-").map(String.init)
                guard parts.count == 2 else { throw HostError(.invalid, "scheduler.off_peak is HH:MM-HH:MM or none") }
                offPeak = (try ClockTime.parse(parts[0], what: "scheduler.off_peak"), try ClockTime.parse(parts[1], what: "scheduler.off_peak"))
            }
        }
        if let value = settings["scheduler.retry_base"] { retryBase = try Duration.parse(value, what: "scheduler.retry_base") }
        if let value = settings["scheduler.time_zone"] {
            guard let zone = TimeZone(identifier: value) else { throw HostError(.invalid, "scheduler.time_zone '\(value)' is unknown") }
            timeZone = zone
        }
    }
}
