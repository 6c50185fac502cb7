import PluginAPI

/// The online tier: archives of recovery points in S3-compatible object storage, kept for
/// up to 3360 days (PRODUCT.md, "Azure online protection").
///
/// Not built yet: every call answers `planned` with what is missing.
final class OnlineTierProvider: TierProvider {
    static let version = "0.1.0"
    /// The longest online retention DPM offers, and so the most this tier accepts.
    static let maxRetentionDays = 3360

    let descriptor = ProviderDescriptor(
        id: "online-tier",
        displayName: "Online tier on S3-compatible object storage",
        version: OnlineTierProvider.version,
        kind: .tier,
        capabilities: [.longTermRetention],
        maxRetentionDays: OnlineTierProvider.maxRetentionDays,
        status: .planned("S3 archives (SigV4 client, object lock, 3360-day retention) are not built yet")
    )
}
