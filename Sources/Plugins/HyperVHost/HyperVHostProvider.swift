import PluginAPI

/// Host-level VM protection: the VM inventory, snapshots of VMs at rest or running, the
/// Hyper-V disk formats, and recovery of whole VMs, disks and items (behaviours 1–3, 5, 10).
final class HyperVHostProvider: WorkloadProvider {
    static let version = "0.1.0"

    let descriptor = ProviderDescriptor(
        id: "hyperv-host",
        displayName: "Hyper-V host-level VM protection (VHDX, VHD, qcow2, raw)",
        version: HyperVHostProvider.version,
        kind: .workload,
        capabilities: [.offlineBackup, .blockStreams, .restoreOriginal, .restoreAlternate, .expressFull],
        status: .planned("VM inventory, disk-format readers and backup are not built yet")
    )
}
