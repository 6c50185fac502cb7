import Foundation

/// The virtual disk formats dpm reads, and how each is recognised from its content.
///
/// | format | signature | where |
/// |---|---|---|
/// | VHDX | ASCII `vhdxfile` | offset 0 (the file type identifier, MS-VHDX 2.2.1) |
/// | qcow2 | `QFI\xfb` | offset 0 (big-endian magic 0x514649FB) |
/// | VHD | ASCII `conectix` | the footer in the last 512 bytes; dynamic and differencing disks also keep a copy at offset 0 |
/// | raw | none | anything else |
enum DiskFormat: String, Codable, CaseIterable {
    case vhdx, vhd, qcow2, raw

    /// The name qemu uses for the format (`-f`, `-F`, and qcow2's backing-format extension).
    var qemuName: String {
        switch self {
        case .vhdx: return "vhdx"
        case .vhd: return "vpc"
        case .qcow2: return "qcow2"
        case .raw: return "raw"
        }
    }

    /// A format from qemu's name for it (`vpc` is VHD); nil for formats dpm does not read.
    init?(qemuName: String) {
        switch qemuName.lowercased() {
        case "vhdx": self = .vhdx
        case "vpc", "vhd": self = .vhd
        case "qcow2": self = .qcow2
        case "raw", "file", "host_device": self = .raw
        default: return nil
        }
    }

    /// The name used in messages.
    var displayName: String {
        switch self {
        case .vhdx: return "VHDX"
        case .vhd: return "VHD"
        case .qcow2: return "qcow2"
        case .raw: return "raw"
        }
    }

    static let vhdxSignature = "vhdxfile"
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB]
    static let vhdCookie = "conectix"

    /// Recognises the format from the file's content; anything unrecognised is raw.
    static func probe(_ file: FileReader) throws -> DiskFormat {
        let headLength = Int(Swift.min(file.physicalSize, 512))
        let head = try file.readBytes(at: 0, count: headLength)
        if head.matches(vhdxSignature, at: 0) { return .vhdx }
        if head.count >= 4 && Array(head[0..<4]) == qcow2Magic { return .qcow2 }
        if file.physicalSize >= 512 {
            let tail = try file.readBytes(at: file.physicalSize - 512, count: 512)
            if tail.matches(vhdCookie, at: 0) { return .vhd }
        }
        // A dynamic VHD whose trailing footer is damaged still has its copy at offset 0.
        if head.matches(vhdCookie, at: 0) { return .vhd }
        return .raw
    }

    /// The formats a differencing child may name as its parent: VHDX and VHD only chain to their
    /// own format; qcow2 backing files may be any format.
    var allowedParentFormats: [DiskFormat] {
        switch self {
        case .vhdx: return [.vhdx]
        case .vhd: return [.vhd]
        case .qcow2: return DiskFormat.allCases
        case .raw: return []
        }
    }
}
