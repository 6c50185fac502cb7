import Foundation

/// The names dpm gives the objects it creates in a running QEMU and beside its disks, all
/// derived from the VM's id so that dpm recognises its own leftovers (after a crash) and
/// never touches anyone else's. QEMU node names are at most 31 characters and start with a
/// letter; these are at most 20.
///
/// | object | name |
/// |---|---|
/// | overlay (qcow2 node / its file node) | `dpm-VMID8-fl{i}` / `dpm-VMID8-ff{i}` |
/// | jobs creating the overlay | `dpm-VMID8-mf{i}`, `dpm-VMID8-mq{i}` |
/// | backup job (sync=none) / its copy-before-write filter | `dpm-VMID8-bk{i}` / `dpm-VMID8-cbw{i}` |
/// | NBD export id / export name | `dpm-VMID8-ex{i}` / `dpm-VMID8-disk{i}` |
/// | dirty bitmap of generation g | `dpm-VMID8-g{g}` |
/// | overlay file, beside disk i | `.dpm-VMID8-fleece{i}.qcow2` |
/// | NBD server socket | `dpm-VMID8-nbd.sock` in the provider's state directory (or /tmp when that path is too long) |
struct FleeceNames {
    /// `dpm-` and the first 8 hexadecimal digits of the VM's id.
    let prefix: String
    let nbdSocket: String

    init(vmID: String, stateDirectory: String) {
        let hex = vmID.lowercased().filter { $0.isHexDigit }
        prefix = "dpm-" + String(hex.prefix(8)).padding(toLength: 8, withPad: "0", startingAt: 0)
        let preferred = stateDirectory + "/\(prefix)-nbd.sock"
        nbdSocket = preferred.utf8.count <= UnixSocket.maxPathLength ? preferred : "/tmp/\(prefix)-nbd.sock"
    }

    func overlayNode(_ index: Int) -> String { "\(prefix)-fl\(index)" }
    func overlayFileNode(_ index: Int) -> String { "\(prefix)-ff\(index)" }
    func createFileJob(_ index: Int) -> String { "\(prefix)-mf\(index)" }
    func createFormatJob(_ index: Int) -> String { "\(prefix)-mq\(index)" }
    func backupJob(_ index: Int) -> String { "\(prefix)-bk\(index)" }
    func filterNode(_ index: Int) -> String { "\(prefix)-cbw\(index)" }
    func exportID(_ index: Int) -> String { "\(prefix)-ex\(index)" }
    func exportName(_ index: Int) -> String { "\(prefix)-disk\(index)" }
    func bitmap(generation: Int) -> String { "\(prefix)-g\(generation)" }

    /// The overlay file of disk `index`, in the directory of the disk's image (the scratch
    /// space of behaviour 6).
    func overlayFile(_ index: Int, besideDisk disk: String) -> String {
        (disk as NSString).deletingLastPathComponent + "/.\(prefix)-fleece\(index).qcow2"
    }

    /// Whether a file name (no directory) is one of this VM's overlay files.
    func isOverlayFileName(_ name: String) -> Bool {
        name.hasPrefix(".\(prefix)-fleece") && name.hasSuffix(".qcow2")
    }

    /// The generation of one of this VM's bitmaps, or nil for any other name.
    func generation(ofBitmap name: String) -> Int? {
        guard name.hasPrefix("\(prefix)-g") else { return nil }
        return Int(name.dropFirst(prefix.count + 2))
    }

    func isOurs(_ name: String) -> Bool { name.hasPrefix(prefix + "-") }
}
