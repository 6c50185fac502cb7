import PluginAPI

/// Long-term protection on tape: drives, changers, media pools and a file-backed virtual
/// tape library, keeping archives for 1 to 99 years (behaviour 7).
///
/// Not built yet: every call answers `planned` with what is missing.
final class TapeLibraryProvider: TierProvider {
    static let version = "0.1.0"

    let descriptor = ProviderDescriptor(
        id: "tape-library",
        displayName: "Long-term tape library (SCSI tape, medium changer, virtual tape library)",
        version: TapeLibraryProvider.version,
        kind: .tier,
        capabilities: [.longTermRetention],
        maxRetentionDays: 99 * 365 + 24,
        status: .planned("tape archives (virtual tape library, GNU tar-readable volumes, media pools) are not built yet")
    )
}
