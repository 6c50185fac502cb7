import PluginAPI

/// Guest-level application protection: PostgreSQL and SQLite inside a guest, recovered in
/// the application's terms (behaviour 1).
///
/// Not built yet: every call answers `planned` with what is missing.
final class GuestAppProvider: WorkloadProvider {
    static let version = "0.1.0"

    let descriptor = ProviderDescriptor(
        id: "guest-app",
        displayName: "Guest-level application protection (PostgreSQL, SQLite)",
        version: GuestAppProvider.version,
        kind: .workload,
        capabilities: [.onlineBackup, .applicationItems, .fileStreams, .restoreOriginal, .restoreAlternate],
        status: .planned("application-consistent PostgreSQL and SQLite backup (dump streams, per-database recovery) is not built yet")
    )
}
