import Foundation
import PluginAPI

/// The volumes of one virtual disk: its partitions (MBR or GPT), or the whole disk when it
/// has no partition table, each with the guest file system found on it.
struct GuestVolume {
    /// "part1", "part2" … (1-based partition numbers), or "volume" for a bare disk.
    var name: String
    var start: UInt64
    var size: UInt64
    var partitionType: String?
    var source: BlockSource
    /// "ntfs", "ext4", "fat32", "swap", or nil when nothing dpm reads is found.
    var fileSystemType: String?
    var fileSystem: GuestFileSystem?
    var label: String?
    /// Why the file system could not be opened, when it could not.
    var problem: String?
}

enum GuestVolumes {
    static let linuxSwapGUID = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

    /// Finds the volumes of a disk and opens what it can read. A damaged partition table or
    /// file system is reported on the volume (`problem`), not thrown, so one bad volume does
    /// not hide the others.
    static func scan(_ disk: BlockSource) throws -> [GuestVolume] {
        let partitions = try PartitionTable.read(disk)
        var volumes: [GuestVolume] = []
        if partitions.isEmpty {
            volumes.append(open(GuestVolume(name: "volume", start: 0, size: disk.size, partitionType: nil, source: disk)))
        }
        for partition in partitions {
            guard let slice = try? BlockSlice(disk, offset: partition.start, size: partition.size) else {
                volumes.append(GuestVolume(name: "part\(partition.index)", start: partition.start, size: partition.size,
                                           partitionType: partition.type, source: disk, problem: "the partition passes the end of the disk"))
                continue
            }
            volumes.append(open(GuestVolume(name: "part\(partition.index)", start: partition.start, size: partition.size,
                                            partitionType: partition.type, source: slice)))
        }
        return volumes
    }

    static func open(_ volume: GuestVolume) -> GuestVolume {
        var volume = volume
        let type = volume.partitionType?.uppercased()
        if type == "0X82" || type == linuxSwapGUID || SwapSignature.isLinuxSwap(volume.source) {
            volume.fileSystemType = "swap"
            return volume
        }
        do {
            if NTFSFileSystem.probe(volume.source) {
                volume.fileSystem = try NTFSFileSystem(volume: volume.source)
            } else if Ext4FileSystem.probe(volume.source) {
                volume.fileSystem = try Ext4FileSystem(volume: volume.source)
            } else if FAT32FileSystem.probe(volume.source) {
                volume.fileSystem = try FAT32FileSystem(volume: volume.source)
            }
        } catch {
            volume.problem = String(describing: error)
        }
        volume.fileSystemType = volume.fileSystem?.type
        volume.label = volume.fileSystem?.label
        return volume
    }
}
