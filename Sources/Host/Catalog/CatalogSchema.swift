import Foundation

/// The catalog's schema, versioned with SQLite's `user_version`. Migrations only ever
/// append: migration N takes the schema from version N-1 to N, inside one transaction.
enum CatalogSchema {
    static let migrations: [String] = [
        // 1: data sources, recovery points, jobs.
        """
        CREATE TABLE datasources(
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT '',
            retention_days INTEGER NOT NULL DEFAULT 14,
            created TEXT NOT NULL
        );
        CREATE INDEX datasources_by_name ON datasources(name);
        CREATE TABLE recovery_points(
            id TEXT PRIMARY KEY,
            datasource_id TEXT NOT NULL REFERENCES datasources(id),
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            consistency TEXT NOT NULL,
            reason TEXT NOT NULL,
            pause_ms INTEGER NOT NULL,
            logical_bytes INTEGER NOT NULL,
            bytes_read INTEGER NOT NULL,
            bytes_new INTEGER NOT NULL,
            bytes_stored INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            token TEXT,
            change_source TEXT NOT NULL,
            index_path TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'ok',
            damage TEXT
        );
        CREATE INDEX recovery_points_by_time ON recovery_points(datasource_id, time);
        CREATE TABLE jobs(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            datasource_id TEXT,
            state TEXT NOT NULL,
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            pid INTEGER,
            progress_done INTEGER NOT NULL DEFAULT 0,
            progress_total INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            result TEXT
        );
        CREATE INDEX jobs_by_state ON jobs(state);
        """,
        // 2: protection groups, the scheduler's memory, scheduled jobs, consistency marks.
        """
        CREATE TABLE groups(
            name TEXT PRIMARY KEY,
            policy TEXT NOT NULL,
            created TEXT NOT NULL,
            modified TEXT NOT NULL
        );
        CREATE TABLE group_members(
            datasource_id TEXT PRIMARY KEY,
            group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE
        );
        CREATE TABLE schedule_state(
            key TEXT PRIMARY KEY,
            last_slot TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            retry_at TEXT
        );
        ALTER TABLE jobs ADD COLUMN schedule_key TEXT;
        ALTER TABLE jobs ADD COLUMN slot TEXT;
        ALTER TABLE jobs ADD COLUMN mode TEXT;
        ALTER TABLE datasources ADD COLUMN consistent INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE datasources ADD COLUMN host TEXT;
        """,
        // 3: long-term copies of recovery points on tiers (tape, online).
        """
        CREATE TABLE tier_copies(
            tier TEXT NOT NULL,
            name TEXT NOT NULL,
            datasource_id TEXT NOT NULL,
            rp_id TEXT NOT NULL,
            time TEXT NOT NULL,
            created TEXT NOT NULL,
            expires TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            location TEXT NOT NULL,
            volumes TEXT,
            point TEXT NOT NULL,
            key_fingerprint TEXT,
            status TEXT NOT NULL DEFAULT 'ok',
            damage TEXT,
            PRIMARY KEY(tier, name)
        );
        CREATE INDEX tier_copies_by_datasource ON tier_copies(datasource_id, time);
        """,
        // 4: the chunks known to be in the online bucket, so syncs upload only what it lacks.
        """
        CREATE TABLE online_chunks(
            name TEXT PRIMARY KEY,
            digest TEXT,
            bytes INTEGER NOT NULL,
            version_id TEXT,
            retain_until TEXT,
            uploaded TEXT NOT NULL
        );
        CREATE INDEX online_chunks_by_digest ON online_chunks(digest);
        """,
    ]

    static var currentVersion: Int { migrations.count }

    /// Brings a database up to the current version; refuses one from a newer dpm.
    static func migrate(_ database: SQLiteDatabase) throws {
        let version = Int(try database.query("PRAGMA user_version").first?.first?.int ?? 0)
        guard version <= currentVersion else {
            throw HostError(.invalid, "catalog \(database.path) has schema version \(version), newer than this dpm's \(currentVersion); upgrade dpm")
        }
        guard version < currentVersion else { return }
        try database.transaction {
            // Re-read inside the transaction: another process may have migrated meanwhile.
            let current = Int(try database.query("PRAGMA user_version").first?.first?.int ?? 0)
            for number in current..<currentVersion {
                try database.execute(migrations[number])
                try database.execute("PRAGMA user_version = \(number + 1)")
            }
        }
    }
}
