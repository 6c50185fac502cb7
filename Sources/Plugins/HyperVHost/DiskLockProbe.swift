import Foundation
import PluginAPI

/// Tells whether another process (a running QEMU) holds a lock on a disk image.
///
/// QEMU takes open-file-description (OFD) byte-range locks on the images it has open. A
/// disk that is locked belongs to a running VM, whose disks must not be read as if at rest.
enum DiskLockProbe {
    /// F_OFD_GETLK from <fcntl.h> (Linux); the Glibc module omits it.
    static let getLockCommand: Int32 = 36

    static func isLockedByAnotherProcess(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var probe = flock()
        probe.l_type = Int16(F_WRLCK)
        probe.l_whence = Int16(SEEK_SET)
        probe.l_start = 0
        probe.l_len = 0
        probe.l_pid = 0
        guard fcntl(fd, getLockCommand, &probe) == 0 else { return false }
        return probe.l_type != Int16(F_UNLCK)
    }
}
