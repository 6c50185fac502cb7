import Foundation
import PluginAPI

/// What one provider call works with: the state store and the settings the host gave.
struct TapeContext {
    let store: ProviderStateStore
    /// How long a job waits for a usable tape or drive before failing (`wait_seconds`).
    let waitSeconds: Double
    /// The record size written to tape.
    let recordSize: Int

    init(stateDirectory: String, waitSeconds: Double = 300, recordSize: Int = TapeFormat.recordSize) throws {
        store = try ProviderStateStore(directory: stateDirectory)
        self.waitSeconds = waitSeconds
        self.recordSize = recordSize
    }

    init(call: HostCall) throws {
        let wait = call.config("wait_seconds").flatMap(Double.init) ?? 300
        try self.init(stateDirectory: try call.stateDirectory(), waitSeconds: max(0, wait))
    }

    var deadline: Date { Date().addingTimeInterval(waitSeconds) }

    /// The library device of a library record.
    func device(_ record: LibraryRecord) throws -> TapeLibraryDevice { try record.open() }
}
