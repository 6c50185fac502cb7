import CSQLite
import Foundation

/// A thin wrapper over one SQLite connection: the only file in Host that touches the
/// SQLite C API. Not thread-safe; open one per thread.
public final class SQLiteDatabase {
    let handle: OpaquePointer
    public let path: String

    /// A value bound to or read from a statement.
    public enum Value: Equatable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
    }

    public init(path: String) throws {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        guard sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close(db) }
            throw HostError(.io, "cannot open catalog \(path): \(message)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 30_000)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit { sqlite3_close_v2(handle) }

    func error(_ what: String) -> HostError {
        let code = sqlite3_errcode(handle)
        let message = String(cString: sqlite3_errmsg(handle))
        if code == SQLITE_BUSY || code == SQLITE_LOCKED {
            return HostError(.busy, "catalog \(path) is busy (\(what)): \(message); another dpm holds it, try again")
        }
        if code == SQLITE_CORRUPT || code == SQLITE_NOTADB {
            return HostError(.corrupt, "catalog \(path) is damaged (\(what)): \(message)")
        }
        return HostError(.io, "catalog \(path): \(what) failed: \(message)")
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw error(sql.prefix(60).description) }
    }

    /// Runs one statement with parameters, returning every row.
    @discardableResult
    public func query(_ sql: String, _ parameters: [Value] = []) throws -> [[Value]] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw error("prepare") }
        defer { sqlite3_finalize(statement) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (index, value) in parameters.enumerated() {
            let position = Int32(index + 1)
            switch value {
            case .null: sqlite3_bind_null(statement, position)
            case .integer(let number): sqlite3_bind_int64(statement, position, number)
            case .real(let number): sqlite3_bind_double(statement, position, number)
            case .text(let text): sqlite3_bind_text(statement, position, text, -1, transient)
            }
        }
        var rows: [[Value]] = []
        while true {
            let step = sqlite3_step(statement)
            if step == SQLITE_DONE { break }
            guard step == SQLITE_ROW else { throw error("step") }
            var row: [Value] = []
            for column in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_NULL: row.append(.null)
                default: row.append(.text(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""))
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Runs `body` in an immediate transaction, committing on success.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}

extension SQLiteDatabase.Value {
    public var int: Int64? { if case .integer(let value) = self { return value }; return nil }
    public var string: String? {
        switch self {
        case .text(let value): return value
        case .integer(let value): return String(value)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case .real(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }
}
