import Foundation
import Glibc

/// A file-backed virtual tape library: cartridges, storage slots, mail slots and drives in
/// one folder, usable by several processes at once.
///
/// Folder layout (format 1):
/// - `library.json`: `VirtualLibraryConfig` (name, geometry, capacity, early warning).
/// - `elements.json`: `VirtualElements`, what every slot, mail slot and drive holds, plus
///   each drive's position and whether it owes a closing filemark. Changed only under
///   `changer.lock`.
/// - `drive-N.lock`: held by the process that has drive N open.
/// - `cartridges/`: one `VirtualCartridge` per barcode.
/// Another dpm data directory can attach to the same folder (`library.add` with an existing
/// `dir`), which is how a fresh server re-reads old tapes.
final class VirtualLibrary: MediumChanger {
    let directory: String
    let config: VirtualLibraryConfig
    var cartridgeDirectory: String { directory + "/cartridges" }
    var changerLockPath: String { directory + "/changer.lock" }
    var elementsPath: String { directory + "/elements.json" }
    func driveLockPath(_ index: Int) -> String { directory + "/drive-\(index).lock" }

    init(directory: String) throws {
        self.directory = directory
        guard let data = StateFile.read(directory + "/library.json") else {
            throw TapeDeviceError(ENOENT, "\(directory) holds no virtual tape library (library.json is missing); create one with `dpm tape library add NAME --kind vtl --dir \(directory) --slots N --drives M --capacity SIZE`")
        }
        do {
            config = try VTLJSON.decoder.decode(VirtualLibraryConfig.self, from: data)
        } catch {
            throw TapeDeviceError(EIO, "virtual library \(directory)/library.json is damaged (\(error)); restore it or recreate the library")
        }
        guard config.format == 1 else {
            throw TapeDeviceError(EIO, "virtual library \(directory) has format \(config.format); this dpm reads format 1")
        }
    }

    /// Creates a library in an empty (or missing) folder.
    static func create(directory: String, config: VirtualLibraryConfig) throws -> VirtualLibrary {
        try FileManager.default.createDirectory(atPath: directory + "/cartridges", withIntermediateDirectories: true)
        guard !FileManager.default.fileExists(atPath: directory + "/library.json") else {
            throw TapeDeviceError(EEXIST, "\(directory) already holds a virtual library")
        }
        let elements = VirtualElements(slots: Array(repeating: nil, count: config.slots),
                                       mail: Array(repeating: nil, count: config.mailSlots),
                                       drives: Array(repeating: VirtualElements.Drive(), count: config.drives))
        try StateFile.writeAtomically(try VTLJSON.encoder.encode(elements), to: directory + "/elements.json")
        try StateFile.writeAtomically(try VTLJSON.encoder.encode(config), to: directory + "/library.json")
        return try VirtualLibrary(directory: directory)
    }

    // MARK: Elements

    func readElements() throws -> VirtualElements {
        guard let data = StateFile.read(elementsPath) else {
            throw TapeDeviceError(EIO, "virtual library \(config.name): \(elementsPath) is missing")
        }
        do {
            return try VTLJSON.decoder.decode(VirtualElements.self, from: data)
        } catch {
            throw TapeDeviceError(EIO, "virtual library \(config.name): \(elementsPath) is damaged (\(error))")
        }
    }

    /// Reads, changes and writes `elements.json` under the changer lock.
    @discardableResult
    func updateElements<T>(_ change: (inout VirtualElements) throws -> T) throws -> T {
        try FileLock.withLock(changerLockPath) {
            var elements = try readElements()
            let before = elements
            let result = try change(&elements)
            if elements != before { try StateFile.writeAtomically(try VTLJSON.encoder.encode(elements), to: elementsPath) }
            return result
        }
    }

    func cartridge(_ barcode: String) throws -> VirtualCartridge {
        guard VirtualCartridge.exists(directory: cartridgeDirectory, barcode: barcode) else {
            throw TapeDeviceError(ENOENT, "virtual library \(config.name) has no cartridge \(barcode)")
        }
        return try VirtualCartridge(directory: cartridgeDirectory, barcode: barcode, create: false)
    }

    func openDrive(_ index: Int) throws -> TapeDrive { try VirtualDrive(library: self, index: index) }

    // MARK: MediumChanger

    func inventory() throws -> ChangerInventory {
        let elements = try readElements()
        var entries: [ChangerInventory.Entry] = []
        for (index, drive) in elements.drives.enumerated() {
            entries.append(.init(element: .drive(index), barcode: drive.barcode, full: drive.barcode != nil, loadedFrom: drive.loadedFrom))
        }
        for (index, barcode) in elements.slots.enumerated() {
            entries.append(.init(element: .slot(index + 1), barcode: barcode, full: barcode != nil, loadedFrom: nil))
        }
        for (index, barcode) in elements.mail.enumerated() {
            entries.append(.init(element: .mail(index + 1), barcode: barcode, full: barcode != nil, loadedFrom: nil))
        }
        return ChangerInventory(entries: entries)
    }

    func move(from source: ChangerElement, to destination: ChangerElement) throws {
        try updateElements { elements in
            guard let barcode = try elements.content(source, library: config.name) else {
                throw TapeDeviceError(ENOENT, "virtual library \(config.name): \(source) is empty", refusal: .sourceEmpty)
            }
            guard try elements.content(destination, library: config.name) == nil else {
                throw TapeDeviceError(EEXIST, "virtual library \(config.name): \(destination) is full", refusal: .destinationFull)
            }
            for case .drive(let index) in [source, destination] {
                guard let probe = try FileLock.tryAcquire(driveLockPath(index)) else {
                    throw TapeDeviceError(EBUSY, "virtual library \(config.name): drive \(index) is in use by another process", refusal: .driveInUse)
                }
                probe.unlock()
                if elements.drives[index].offline {
                    throw TapeDeviceError(EIO, "virtual library \(config.name): drive \(index) is offline")
                }
            }
            var loadedFrom: Int?
            if case .drive(let index) = source {
                let drive = elements.drives[index]
                if drive.pendingFilemark, let cartridge = try? self.cartridge(barcode) {
                    // Unloading rewinds and ejects; a filemark owed by a dead writer is written first.
                    try cartridge.truncate(at: drive.position)
                    try cartridge.append(nil)
                }
                elements.drives[index] = VirtualElements.Drive()
            } else if case .slot(let number) = source {
                loadedFrom = number
            }
            try elements.set(source, nil)
            if case .drive(let index) = destination {
                elements.drives[index] = VirtualElements.Drive(barcode: barcode, loadedFrom: loadedFrom)
                var meta = CartridgeMeta.load(directory: cartridgeDirectory, barcode: barcode)
                meta.loads += 1
                try meta.save(directory: cartridgeDirectory)
            } else {
                try elements.set(destination, barcode)
            }
        }
    }

    // MARK: Operator actions and fault knobs

    /// Puts a new blank cartridge into an empty slot or mail slot (an operator inserting one).
    func insert(barcode: String, into element: ChangerElement) throws {
        guard !barcode.isEmpty, barcode.count <= 36, barcode.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw TapeDeviceError(EINVAL, "barcode '\(barcode)' must be 1-36 letters and digits (a SCSI volume tag)")
        }
        if case .drive = element { throw TapeDeviceError(EINVAL, "insert a cartridge into a slot or a mail slot, not a drive") }
        try updateElements { elements in
            if try inventory().location(of: barcode) != nil || VirtualCartridge.exists(directory: cartridgeDirectory, barcode: barcode) {
                throw TapeDeviceError(EEXIST, "virtual library \(config.name) already has a cartridge \(barcode)")
            }
            guard try elements.content(element, library: config.name) == nil else {
                throw TapeDeviceError(EEXIST, "virtual library \(config.name): \(element) is full", refusal: .destinationFull)
            }
            _ = try VirtualCartridge(directory: cartridgeDirectory, barcode: barcode, create: true)
            try CartridgeMeta(barcode: barcode).save(directory: cartridgeDirectory)
            try elements.set(element, barcode)
        }
    }

    func setMeta(_ barcode: String, _ change: (inout CartridgeMeta) -> Void) throws {
        _ = try cartridge(barcode)
        try FileLock.withLock(changerLockPath) {
            var meta = CartridgeMeta.load(directory: cartridgeDirectory, barcode: barcode)
            change(&meta)
            try meta.save(directory: cartridgeDirectory)
        }
    }

    func setDriveOffline(_ index: Int, _ offline: Bool) throws {
        guard index >= 0 && index < config.drives else {
            throw TapeDeviceError(ENXIO, "virtual library \(config.name) has no drive \(index)")
        }
        try updateElements { $0.drives[index].offline = offline }
    }

    /// Adds counter deltas to a cartridge's meta (a drive closing).
    func addCounters(_ barcode: String, from delta: CartridgeMeta) throws {
        try FileLock.withLock(changerLockPath) {
            var meta = CartridgeMeta.load(directory: cartridgeDirectory, barcode: barcode)
            meta.recordsRead += delta.recordsRead
            meta.bytesRead += delta.bytesRead
            meta.recordsWritten += delta.recordsWritten
            meta.bytesWritten += delta.bytesWritten
            try meta.save(directory: cartridgeDirectory)
        }
    }
}

struct VirtualLibraryConfig: Codable, Equatable {
    var format = 1
    var uuid: String
    var name: String
    var slots: Int
    var mailSlots: Int
    var drives: Int
    /// Bytes of record data a cartridge holds before its physical end.
    var capacity: UInt64
    /// Early warning sits this many bytes before the physical end (mhvtl: 2 MiB).
    var earlyWarning: UInt64
}

/// What each element holds (`elements.json`).
struct VirtualElements: Codable, Equatable {
    struct Drive: Codable, Equatable {
        var barcode: String?
        var loadedFrom: Int?
        /// The logical block the drive is at (MTIOCPOS), kept between opens.
        var position = 0
        /// A process wrote and has not closed the drive yet (or died before it could).
        var pendingFilemark = false
        /// Fault knob: the drive does not come online.
        var offline = false

        init(barcode: String? = nil, loadedFrom: Int? = nil) {
            self.barcode = barcode
            self.loadedFrom = loadedFrom
        }
    }

    var slots: [String?]
    var mail: [String?]
    var drives: [Drive]

    func content(_ element: ChangerElement, library: String) throws -> String? {
        switch element {
        case .slot(let number) where number >= 1 && number <= slots.count: return slots[number - 1]
        case .mail(let number) where number >= 1 && number <= mail.count: return mail[number - 1]
        case .drive(let number) where number >= 0 && number < drives.count: return drives[number].barcode
        default:
            throw TapeDeviceError(ENXIO, "virtual library \(library) has no \(element) (slots 1-\(slots.count), mail 1-\(mail.count), drives 0-\(drives.count - 1))",
                                  refusal: .noSuchElement)
        }
    }

    mutating func set(_ element: ChangerElement, _ barcode: String?) throws {
        switch element {
        case .slot(let number): slots[number - 1] = barcode
        case .mail(let number): mail[number - 1] = barcode
        case .drive(let number): drives[number].barcode = barcode
        }
    }
}
