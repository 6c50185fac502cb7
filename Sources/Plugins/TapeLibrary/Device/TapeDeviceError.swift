import Glibc

/// An error from a tape drive or a medium changer, as the device reported it.
///
/// `errno` is what the Linux st driver returns for the condition (ENOSPC at early warning,
/// EIO at the physical end or on a medium error, ENOMEM for a read buffer smaller than the
/// record, EACCES when write-protected, ENOMEDIUM with no cartridge, EBUSY for a drive
/// another process holds); the virtual library raises the same values, so policy code
/// handles both backends alike. Changer refusals carry a `ChangerRefusal`.
struct TapeDeviceError: Error, CustomStringConvertible {
    enum ChangerRefusal: String, Sendable {
        case sourceEmpty = "source-empty"
        case destinationFull = "destination-full"
        case driveInUse = "drive-in-use"
        case noSuchElement = "no-such-element"
    }

    var errno: Int32
    var refusal: ChangerRefusal?
    /// What failed, naming the device and the cartridge.
    var message: String

    init(_ errno: Int32, _ message: String, refusal: ChangerRefusal? = nil) {
        self.errno = errno
        self.message = message
        self.refusal = refusal
    }

    /// The error of the last failed system call.
    static func system(_ what: String) -> TapeDeviceError {
        let code = Glibc.errno
        return TapeDeviceError(code, "\(what): \(String(cString: strerror(code)))")
    }

    var description: String { message }

    var isNoSpace: Bool { errno == ENOSPC }
    var isBufferTooSmall: Bool { errno == ENOMEM }
}
