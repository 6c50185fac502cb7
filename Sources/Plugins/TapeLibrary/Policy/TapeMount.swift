import Foundation
import Glibc
import PluginAPI

/// A cartridge loaded in a drive this process holds open.
final class TapeMount {
    let library: TapeLibraryDevice
    let driveIndex: Int
    let barcode: String
    private(set) var drive: TapeDrive?

    init(library: TapeLibraryDevice, driveIndex: Int, barcode: String, drive: TapeDrive) {
        self.library = library
        self.driveIndex = driveIndex
        self.barcode = barcode
        self.drive = drive
    }

    func open() throws -> TapeDrive {
        guard let drive else { throw PluginError(.internalError, "tape \(barcode) is no longer mounted") }
        return drive
    }

    /// Closes the drive (writing the closing filemark if the last operation was a write).
    func release() throws {
        guard let drive else { return }
        self.drive = nil
        try onDevice { try drive.close() }
    }

    /// Loads `barcode` into a usable drive of `library` and opens it, waiting until
    /// `deadline` while the tape's drive or every allowed drive is in use or offline.
    static func mount(_ barcode: String, library: TapeLibraryDevice, drives allowed: [Int]?, deadline: Date) throws -> TapeMount {
        var lastProblem = ""
        while true {
            do {
                if let mount = try attempt(barcode, library: library, allowed: allowed, problem: &lastProblem) { return mount }
            } catch let error as TapeDeviceError where error.isRace {
                lastProblem = error.message  // another process moved something meanwhile
            }
            guard Date() < deadline else {
                throw PluginError(.transient, "tape \(barcode) in library \(library.name) could not be mounted: \(lastProblem); "
                                  + "free a drive (see `dpm tape library inventory \(library.name)`) or raise tape-library.wait_seconds")
            }
            usleep(200_000)
        }
    }

    private static func attempt(_ barcode: String, library: TapeLibraryDevice, allowed: [Int]?, problem: inout String) throws -> TapeMount? {
        let changer = library.changer
        let inventory = try onDevice { try changer.inventory() }
        guard let location = inventory.location(of: barcode) else {
            throw PluginError(.notFound, "tape \(barcode) is not in library \(library.name); insert it into a mail slot and run `dpm tape move \(barcode) --to slot:N`")
        }
        let usable = (allowed ?? Array(0..<library.driveCount)).filter { $0 >= 0 && $0 < library.driveCount }
        if case .drive(let index) = location {
            do {
                let drive = try library.openDrive(index)
                return TapeMount(library: library, driveIndex: index, barcode: barcode, drive: drive)
            } catch let error as TapeDeviceError where error.errno == EBUSY {
                problem = "it is in drive \(index), which another process is using"
                return nil
            }
        }
        // Prefer empty drives, then drives holding another cartridge (unloaded to its slot).
        let order = usable.sorted { (inventory.entry(.drive($0))?.full == true ? 1 : 0) < (inventory.entry(.drive($1))?.full == true ? 1 : 0) }
        guard !order.isEmpty else { throw PluginError(.invalid, "library \(library.name) has none of the drives \(allowed ?? [])") }
        for index in order {
            guard let entry = inventory.entry(.drive(index)) else { continue }
            do {
                if entry.full {
                    let home = entry.loadedFrom.flatMap { slot in inventory.entry(.slot(slot))?.full == false ? slot : nil }
                        ?? inventory.slots.first { !$0.full }.flatMap { if case .slot(let n) = $0.element { return n } else { return nil } }
                    guard let home else { problem = "no empty slot to unload drive \(index) into"; continue }
                    try changer.move(from: .drive(index), to: .slot(home))
                }
                try changer.move(from: location, to: .drive(index))
                let drive = try library.openDrive(index)
                return TapeMount(library: library, driveIndex: index, barcode: barcode, drive: drive)
            } catch let error as TapeDeviceError where error.isRace || error.errno == EIO {
                problem = error.message
                continue
            }
        }
        return nil
    }
}

extension TapeDeviceError {
    /// A refusal that another process's concurrent move or open explains: retried.
    var isRace: Bool {
        errno == EBUSY || refusal == .driveInUse || refusal == .destinationFull || refusal == .sourceEmpty
    }
}
