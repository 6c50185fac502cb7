import Foundation
import Glibc
import PluginAPI

/// A library as policy code sees it: a changer and numbered drives. The two backends are
/// the virtual library and Linux st drives with an mtx-driven changer.
protocol TapeLibraryDevice: AnyObject {
    var name: String { get }
    var driveCount: Int { get }
    var changer: MediumChanger { get }
    func openDrive(_ index: Int) throws -> TapeDrive
}

final class VirtualLibraryDevice: TapeLibraryDevice {
    let library: VirtualLibrary
    init(_ library: VirtualLibrary) { self.library = library }
    var name: String { library.config.name }
    var driveCount: Int { library.config.drives }
    var changer: MediumChanger { library }
    func openDrive(_ index: Int) throws -> TapeDrive { try library.openDrive(index) }
}

final class LinuxLibraryDevice: TapeLibraryDevice {
    let name: String
    let drives: [String]
    let changer: MediumChanger

    init(name: String, drives: [String], changer: String) {
        self.name = name
        self.drives = drives
        self.changer = MtxChanger(device: changer)
    }

    var driveCount: Int { drives.count }

    func openDrive(_ index: Int) throws -> TapeDrive {
        guard index >= 0 && index < drives.count else {
            throw TapeDeviceError(ENXIO, "library \(name) has no drive \(index)")
        }
        return try LinuxTapeDrive(path: drives[index])
    }
}

extension LibraryRecord {
    func open() throws -> TapeLibraryDevice {
        switch kind {
        case "vtl":
            guard let dir else { throw PluginError(.corrupt, "library \(name) has no folder in the tape state") }
            do { return VirtualLibraryDevice(try VirtualLibrary(directory: dir)) } catch let error as TapeDeviceError {
                throw PluginError(.io, "library \(name): \(error.message)")
            }
        case "st":
            guard let changer else {
                throw PluginError(.unsupported, "library \(name): a standalone st drive without a changer cannot identify cartridges by barcode yet; attach the drive's changer (--changer /dev/sgN)")
            }
            return LinuxLibraryDevice(name: name, drives: driveDevices ?? [], changer: changer)
        default:
            throw PluginError(.corrupt, "library \(name) has unknown kind '\(kind)'")
        }
    }
}

/// Turns device errors into plugin errors with the status the host expects.
extension TapeDeviceError {
    var pluginError: PluginError {
        switch errno {
        case ENOSPC: return PluginError(.noSpace, message)
        case EBUSY: return PluginError(.transient, message)
        case ENOENT, ENXIO: return PluginError(.notFound, message)
        case EINVAL, EEXIST: return PluginError(.invalid, message)
        default: return PluginError(.io, message)
        }
    }
}

/// Runs device code, converting its errors.
func onDevice<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as TapeDeviceError { throw error.pluginError }
}
