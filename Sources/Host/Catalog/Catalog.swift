import Foundation
import PluginAPI

/// The SQLite catalog (`DATA/catalog.sqlite`): data sources, recovery points and jobs.
///
/// The catalog is the index of what exists, not the data: recovery point index files are
/// written before their rows, so a row never names a missing or partial index. Connections
/// are not shared between threads; each process opens its own.
public final class Catalog {
    let database: SQLiteDatabase

    public init(dataDirectory: DataDirectory) throws {
        try dataDirectory.create()
        database = try SQLiteDatabase(path: dataDirectory.catalogFile)
        try CatalogSchema.migrate(database)
    }

    public var schemaVersion: Int { CatalogSchema.currentVersion }

    // MARK: Data sources

    public func upsert(_ source: DataSourceRecord) throws {
        try database.query("""
            INSERT INTO datasources(id, provider, name, kind, retention_days, created, host) VALUES(?,?,?,?,?,?,?)
            ON CONFLICT(id) DO UPDATE SET provider = excluded.provider, name = excluded.name, kind = excluded.kind,
                host = COALESCE(excluded.host, host)
            """, [.text(source.id), .text(source.provider), .text(source.name), .text(source.kind),
                  .integer(Int64(source.retentionDays)), .text(CatalogTime.string(source.created)), source.host.map { .text($0) } ?? .null])
    }

    public func setRetention(datasource: String, days: Int) throws {
        try database.query("UPDATE datasources SET retention_days = ? WHERE id = ?", [.integer(Int64(days)), .text(datasource)])
    }

    public func dataSources() throws -> [DataSourceRecord] {
        try database.query("SELECT id, provider, name, kind, retention_days, created, host FROM datasources ORDER BY name").map(Self.dataSource)
    }

    public func dataSource(id: String) throws -> DataSourceRecord? {
        try database.query("SELECT id, provider, name, kind, retention_days, created, host FROM datasources WHERE id = ?",
                           [.text(id)]).first.map(Self.dataSource)
    }

    public func dataSources(named name: String) throws -> [DataSourceRecord] {
        try database.query("SELECT id, provider, name, kind, retention_days, created, host FROM datasources WHERE name = ?",
                           [.text(name)]).map(Self.dataSource)
    }

    /// Finds a data source by id, or by name when the name is unique.
    public func dataSource(_ idOrName: String) throws -> DataSourceRecord? {
        if let row = try database.query("SELECT id, provider, name, kind, retention_days, created, host FROM datasources WHERE id = ?",
                                        [.text(idOrName)]).first {
            return Self.dataSource(row)
        }
        let rows = try database.query("SELECT id, provider, name, kind, retention_days, created, host FROM datasources WHERE name = ?",
                                      [.text(idOrName)])
        guard rows.count <= 1 else {
            throw HostError(.usage, "several data sources are named '\(idOrName)'; use the id (see `dpm datasources list`)")
        }
        return rows.first.map(Self.dataSource)
    }

    static func dataSource(_ row: [SQLiteDatabase.Value]) -> DataSourceRecord {
        DataSourceRecord(id: row[0].string ?? "", provider: row[1].string ?? "", name: row[2].string ?? "", kind: row[3].string ?? "",
                         retentionDays: Int(row[4].int ?? 14), created: CatalogTime.date(row[5].string) ?? Date(timeIntervalSince1970: 0),
                         host: row[6].string)
    }

    // MARK: Recovery points

    static let recoveryPointColumns = """
        id, datasource_id, time, kind, consistency, reason, pause_ms, logical_bytes, bytes_read, bytes_new, bytes_stored,
        duration_ms, token, change_source, index_path, status, damage
        """

    public func insert(_ point: RecoveryPointRecord) throws {
        try database.query("INSERT INTO recovery_points(\(Self.recoveryPointColumns)) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
            .text(point.id), .text(point.datasourceId), .text(CatalogTime.string(point.time)), .text(point.kind.rawValue),
            .text(point.consistency.rawValue), .text(point.reason), .integer(Int64(point.pauseMs)), .integer(Int64(point.logicalBytes)),
            .integer(Int64(point.bytesRead)), .integer(Int64(point.bytesNew)), .integer(Int64(point.bytesStored)),
            .integer(Int64(point.durationMs)), point.token.map { .text($0) } ?? .null, .text(point.changeSource.rawValue),
            .text(point.indexPath), .text(point.status), point.damage.map { .text($0) } ?? .null,
        ])
    }

    /// The data source's recovery points, oldest first.
    public func recoveryPoints(datasource: String) throws -> [RecoveryPointRecord] {
        try database.query("SELECT \(Self.recoveryPointColumns) FROM recovery_points WHERE datasource_id = ? ORDER BY time, id",
                           [.text(datasource)]).map(Self.recoveryPoint)
    }

    public func allRecoveryPoints() throws -> [RecoveryPointRecord] {
        try database.query("SELECT \(Self.recoveryPointColumns) FROM recovery_points ORDER BY time, id").map(Self.recoveryPoint)
    }

    public func recoveryPoint(id: String) throws -> RecoveryPointRecord? {
        try database.query("SELECT \(Self.recoveryPointColumns) FROM recovery_points WHERE id = ?", [.text(id)]).first.map(Self.recoveryPoint)
    }

    /// The newest undamaged recovery point of a data source (verified, unverified or ok).
    public func latestRecoveryPoint(datasource: String) throws -> RecoveryPointRecord? {
        try database.query("SELECT \(Self.recoveryPointColumns) FROM recovery_points WHERE datasource_id = ? AND status != 'damaged' ORDER BY time DESC, id DESC LIMIT 1",
                           [.text(datasource)]).first.map(Self.recoveryPoint)
    }

    /// Records the outcome of a verification in one transaction: the damaged points with
    /// what was found, the others `verified` (clearing an earlier damage mark).
    public func recordVerification(damaged: [(id: String, damage: String)], verified: [String]) throws {
        guard !damaged.isEmpty || !verified.isEmpty else { return }
        try database.transaction {
            for (id, damage) in damaged {
                try database.query("UPDATE recovery_points SET status = 'damaged', damage = ? WHERE id = ?", [.text(damage), .text(id)])
            }
            for id in verified {
                try database.query("UPDATE recovery_points SET status = 'verified', damage = NULL WHERE id = ?", [.text(id)])
            }
        }
    }

    public func deleteRecoveryPoint(_ id: String) throws {
        try database.query("DELETE FROM recovery_points WHERE id = ?", [.text(id)])
    }

    static func recoveryPoint(_ row: [SQLiteDatabase.Value]) -> RecoveryPointRecord {
        RecoveryPointRecord(
            id: row[0].string ?? "", datasourceId: row[1].string ?? "", time: CatalogTime.date(row[2].string) ?? Date(timeIntervalSince1970: 0),
            kind: BackupMode(rawValue: row[3].string ?? "") ?? .full, consistency: Consistency(rawValue: row[4].string ?? "") ?? .crash,
            reason: row[5].string ?? "", pauseMs: Int(row[6].int ?? 0), logicalBytes: UInt64(row[7].int ?? 0),
            bytesRead: UInt64(row[8].int ?? 0), bytesNew: UInt64(row[9].int ?? 0), bytesStored: UInt64(row[10].int ?? 0),
            durationMs: Int(row[11].int ?? 0), token: row[12].string, changeSource: ChangeSource(rawValue: row[13].string ?? "") ?? .full,
            indexPath: row[14].string ?? "", status: row[15].string ?? "ok", damage: row[16].string)
    }

    // MARK: Jobs

    public func createJob(kind: String, datasource: String?, state: String = "running") throws -> Int64 {
        let now = CatalogTime.string(Date())
        try database.query("INSERT INTO jobs(kind, datasource_id, state, created, started, pid) VALUES(?,?,?,?,?,?)",
                           [.text(kind), datasource.map { .text($0) } ?? .null, .text(state), .text(now),
                            state == "running" ? .text(now) : .null, .integer(Int64(getpid()))])
        return database.lastInsertRowID
    }

    public func updateJobProgress(_ id: Int64, done: UInt64, total: UInt64, message: String? = nil) throws {
        try database.query("UPDATE jobs SET progress_done = ?, progress_total = ?, message = COALESCE(?, message) WHERE id = ?",
                           [.integer(Int64(done)), .integer(Int64(total)), message.map { .text($0) } ?? .null, .integer(id)])
    }

    public func finishJob(_ id: Int64, state: String, message: String?, result: String? = nil) throws {
        try database.query("UPDATE jobs SET state = ?, finished = ?, message = ?, result = COALESCE(?, result) WHERE id = ?",
                           [.text(state), .text(CatalogTime.string(Date())), message.map { .text($0) } ?? .null,
                            result.map { .text($0) } ?? .null, .integer(id)])
    }

    /// Records a job the scheduler starts; the worker process fills in its pid.
    public func createScheduledJob(_ job: ScheduledJob, mode: String?) throws -> Int64 {
        let now = CatalogTime.string(Date())
        try database.query("""
            INSERT INTO jobs(kind, datasource_id, state, created, started, schedule_key, slot, mode) VALUES(?,?,'running',?,?,?,?,?)
            """, [.text(job.kind.rawValue), job.datasource.map { .text($0) } ?? .null, .text(now), .text(now), .text(job.key),
                  .text(CatalogTime.string(job.slot)), mode.map { .text($0) } ?? .null])
        return database.lastInsertRowID
    }

    public func setJobPid(_ id: Int64, _ pid: Int32) throws {
        try database.query("UPDATE jobs SET pid = ? WHERE id = ?", [.integer(Int64(pid)), .integer(id)])
    }

    /// Marks a job cancelled by request (the worker then stops and records the outcome).
    public func requestCancel(_ id: Int64) throws {
        try database.query("UPDATE jobs SET message = 'cancel requested' WHERE id = ? AND state = 'running'", [.integer(id)])
    }

    /// Marks failed the jobs recorded as running whose process is gone (killed, or the
    /// machine restarted), so nothing shows as running forever. Returns how many.
    @discardableResult
    public func reapDeadJobs() throws -> Int {
        var reaped = 0
        for job in try jobs(limit: 10_000, state: "running") {
            let message: String
            if let pid = job.pid, pid > 0 {
                guard kill(Int32(pid), 0) != 0, errno == ESRCH else { continue }
                message = "its process (\(pid)) ended without recording an outcome"
            } else {
                // Created but never started (its starter died in between).
                guard Date().timeIntervalSince(job.created) > 60 else { continue }
                message = "it never started: the process that created it ended"
            }
            // Only if still running: the server may have recorded the real reason meanwhile.
            try database.query("UPDATE jobs SET state = 'failed', finished = ?, message = ? WHERE id = ? AND state = 'running'",
                               [.text(CatalogTime.string(Date())), .text(message), .integer(job.id)])
            reaped += 1
        }
        return reaped
    }

    static let jobColumns = """
        id, kind, datasource_id, state, created, started, finished, pid, progress_done, progress_total, message, result,
        schedule_key, slot, mode
        """

    public func jobs(limit: Int = 100, state: String? = nil) throws -> [JobRecord] {
        if let state {
            return try database.query("SELECT \(Self.jobColumns) FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?",
                                      [.text(state), .integer(Int64(limit))]).map(Self.job)
        }
        return try database.query("SELECT \(Self.jobColumns) FROM jobs ORDER BY id DESC LIMIT ?", [.integer(Int64(limit))]).map(Self.job)
    }

    public func job(_ id: Int64) throws -> JobRecord? {
        try database.query("SELECT \(Self.jobColumns) FROM jobs WHERE id = ?", [.integer(id)]).first.map(Self.job)
    }

    static func job(_ row: [SQLiteDatabase.Value]) -> JobRecord {
        JobRecord(id: row[0].int ?? 0, kind: row[1].string ?? "", datasourceId: row[2].string, state: row[3].string ?? "",
                  created: CatalogTime.date(row[4].string) ?? Date(timeIntervalSince1970: 0), started: CatalogTime.date(row[5].string),
                  finished: CatalogTime.date(row[6].string), pid: row[7].int.map { Int($0) },
                  progressDone: UInt64(row[8].int ?? 0), progressTotal: UInt64(row[9].int ?? 0), message: row[10].string, result: row[11].string,
                  scheduleKey: row[12].string, slot: CatalogTime.date(row[13].string), mode: row[14].string)
    }
}
