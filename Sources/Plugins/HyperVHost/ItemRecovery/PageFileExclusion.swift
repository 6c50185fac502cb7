import Foundation
import PluginAPI

/// Finds what a backup should skip inside a VM's disk (behaviour 3: the guest page file or
/// swap is excluded): `pagefile.sys`, `hiberfil.sys` and `swapfile.sys` at the root of NTFS
/// volumes, Linux swap partitions, and swap files an ext4 root's /etc/fstab names. The
/// excluded ranges restore as zeros.
enum PageFileExclusion {
    struct Exclusion {
        var range: Range<UInt64>
        var what: String
    }

    static let windowsFiles = ["pagefile.sys", "hiberfil.sys", "swapfile.sys"]

    /// Never throws: a disk whose contents cannot be read is simply backed up whole.
    static func find(on disk: BlockSource) -> [Exclusion] {
        guard let volumes = try? GuestVolumes.scan(CachedBlockSource(disk)) else { return [] }
        var found: [Exclusion] = []
        for volume in volumes {
            if volume.fileSystemType == "swap" {
                found.append(Exclusion(range: volume.start..<volume.start + volume.size, what: "swap partition \(volume.name)"))
                continue
            }
            guard let fileSystem = volume.fileSystem else { continue }
            var paths: [[String]] = []
            if fileSystem.type == "ntfs" { paths = windowsFiles.map { [$0] } }
            if fileSystem.type == "ext4" { paths = swapFiles(in: fileSystem) }
            for path in paths {
                guard let entry = try? fileSystem.entry(path), entry.kind == .file,
                      let extents = try? fileSystem.volumeExtents(of: entry) else { continue }
                for extent in extents {
                    found.append(Exclusion(range: volume.start + extent.lowerBound..<volume.start + extent.upperBound,
                                           what: "\(volume.name):/\(path.joined(separator: "/"))"))
                }
            }
        }
        return found
    }

    /// Swap files named in the guest's /etc/fstab (lines whose type is `swap` and whose
    /// device is an absolute path), plus the usual /swapfile and /swap.img.
    static func swapFiles(in fileSystem: GuestFileSystem) -> [[String]] {
        var names: Set<String> = ["/swapfile", "/swap.img"]
        if let fstab = try? fileSystem.entry(["etc", "fstab"]), fstab.kind == .file, fstab.size < 1 << 20 {
            var bytes = [UInt8](repeating: 0, count: Int(fstab.size))
            if (try? bytes.withUnsafeMutableBytes { try fileSystem.read(fstab, at: 0, into: $0) }) != nil {
                for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                    let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                    if fields.count >= 3, fields[2] == "swap", fields[0].hasPrefix("/"), !fields[0].hasPrefix("/dev/") {
                        names.insert(String(fields[0]))
                    }
                }
            }
        }
        return names.sorted().map { $0.split(separator: "/").map(String.init) }.filter { !$0.isEmpty && !$0.contains("..") }
    }
}
