import Foundation
import Glibc

/// A drive of the virtual tape library, with the st semantics of `TapeDrive`.
///
/// Opening takes the drive's lock (`drive-N.lock`): a second process gets EBUSY, as a real
/// /dev/nstN held open does. The loaded cartridge, the position and whether a closing
/// filemark is owed persist in the library's `elements.json`, so the next process finds
/// the drive where this one left it. A process killed while writing never closes the
/// drive; the next open writes the filemark the kernel would have written on that close.
final class VirtualDrive: TapeDrive {
    let library: VirtualLibrary
    let index: Int
    var name: String { "virtual library \(library.config.name) drive \(index)" }

    private var lock: FileLock?
    private var cartridge: VirtualCartridge?
    private var meta: CartridgeMeta?
    /// Counters gathered while open, added to the cartridge's meta on close.
    private var counters = CartridgeMeta(barcode: "")
    private var position = 0
    private var positionKnown = true
    private var lastWasWrite = false
    private var pendingRecorded = false
    /// Consecutive reads that returned 0 (a filemark or the end of data).
    private var zeroReads = 0
    /// Past early warning, writes alternate between ENOSPC and success.
    private var failNextWriteAfterWarning = true

    init(library: VirtualLibrary, index: Int) throws {
        self.library = library
        self.index = index
        guard index >= 0 && index < library.config.drives else {
            throw TapeDeviceError(ENXIO, "virtual library \(library.config.name) has no drive \(index) (drives 0-\(library.config.drives - 1))")
        }
        guard let lock = try FileLock.tryAcquire(library.driveLockPath(index)) else {
            throw TapeDeviceError(EBUSY, "\(name) is in use by another process", refusal: .driveInUse)
        }
        self.lock = lock
        do {
            try library.updateElements { elements in
                var drive = elements.drives[index]
                if drive.offline {
                    throw TapeDeviceError(EIO, "\(name) is offline (not ready); bring it online with `dpm tape vtl fault --drive \(index) --online`")
                }
                if let barcode = drive.barcode {
                    let cartridge = try library.cartridge(barcode)
                    self.cartridge = cartridge
                    meta = CartridgeMeta.load(directory: library.cartridgeDirectory, barcode: barcode)
                    position = min(drive.position, cartridge.blockCount)
                    if drive.pendingFilemark {
                        // The previous holder died mid-write: write the filemark its close owed.
                        try cartridge.truncate(at: position)
                        try cartridge.append(nil)
                        position = cartridge.blockCount
                        drive.pendingFilemark = false
                        drive.position = position
                        elements.drives[index] = drive
                    }
                }
            }
        } catch {
            lock.unlock()
            self.lock = nil
            throw error
        }
    }

    deinit { try? close() }

    private func loaded(_ what: String) throws -> VirtualCartridge {
        guard lock != nil else { throw TapeDeviceError(EBADF, "\(name): \(what) after close") }
        guard let cartridge else { throw TapeDeviceError(ENOMEDIUM, "\(name): \(what): no cartridge is loaded") }
        if meta?.isCleaning == true {
            throw TapeDeviceError(EIO, "\(name): \(what): \(cartridge.barcode) is a cleaning cartridge")
        }
        return cartridge
    }

    /// st writes a filemark before rewinding, spacing backwards or seeking after a write.
    private func flushFilemarkIfWriting() throws {
        guard lastWasWrite, let cartridge else { return }
        try cartridge.append(nil)
        position = cartridge.blockCount
        lastWasWrite = false
    }

    private func moved() { zeroReads = 0; failNextWriteAfterWarning = true }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let cartridge = try loaded("read")
        if lastWasWrite { lastWasWrite = false }
        if position >= cartridge.blockCount {
            zeroReads += 1
            if zeroReads <= 2 { return 0 }
            throw TapeDeviceError(EIO, "\(name): read past the end of data on \(cartridge.barcode)")
        }
        if meta?.readErrorAtBlock == position {
            throw TapeDeviceError(EIO, "\(name): medium error reading block \(position) of \(cartridge.barcode)")
        }
        let block = try cartridge.block(position)
        if block.isFilemark {
            position += 1
            zeroReads += 1
            return 0
        }
        zeroReads = 0
        position += 1
        guard buffer.count >= block.length else {
            throw TapeDeviceError(ENOMEM, "\(name): record of \(block.length) bytes does not fit a \(buffer.count)-byte read")
        }
        try cartridge.readRecord(block, into: buffer)
        counters.recordsRead += 1
        counters.bytesRead += UInt64(block.length)
        return block.length
    }

    func write(_ data: UnsafeRawBufferPointer) throws {
        try writeBlock(data)
    }

    private func writeBlock(_ data: UnsafeRawBufferPointer?) throws {
        let cartridge = try loaded("write")
        if meta?.writeProtected == true {
            throw TapeDeviceError(EACCES, "\(name): \(cartridge.barcode) is write-protected")
        }
        if meta?.isWORM == true && position < cartridge.blockCount {
            throw TapeDeviceError(EACCES, "\(name): \(cartridge.barcode) is WORM media; it cannot be overwritten at block \(position)")
        }
        zeroReads = 0
        let length = UInt64(data?.count ?? 0)
        let capacity = library.config.capacity
        let warning = capacity - min(capacity, library.config.earlyWarning)
        let usedBefore = position < cartridge.blockCount ? try cartridge.block(position).offset : cartridge.usedBytes
        if data != nil && usedBefore >= warning {
            if failNextWriteAfterWarning {
                failNextWriteAfterWarning = false
                throw TapeDeviceError(ENOSPC, "\(name): early warning: \(cartridge.barcode) is nearly full")
            }
            failNextWriteAfterWarning = true
        }
        if usedBefore + length > capacity {
            throw TapeDeviceError(EIO, "\(name): physical end of medium on \(cartridge.barcode): \(length) bytes do not fit")
        }
        if !pendingRecorded && data != nil {
            try library.updateElements { $0.drives[index].pendingFilemark = true }
            pendingRecorded = true
        }
        try cartridge.truncate(at: position)
        try cartridge.append(data)
        position = cartridge.blockCount
        if let data {
            lastWasWrite = true
            counters.recordsWritten += 1
            counters.bytesWritten += UInt64(data.count)
        }
    }

    func writeFilemarks(_ count: Int) throws {
        guard count >= 0 else { throw TapeDeviceError(EINVAL, "\(name): MTWEOF \(count)") }
        for _ in 0..<count { try writeBlock(nil) }
        lastWasWrite = false
    }

    func rewind() throws {
        _ = try loaded("rewind")
        try flushFilemarkIfWriting()
        position = 0
        positionKnown = true
        moved()
    }

    func forwardSpaceFiles(_ count: Int) throws {
        let cartridge = try loaded("MTFSF")
        moved()
        for _ in 0..<count {
            guard let mark = cartridge.filemarks.first(where: { $0 >= position }) else {
                position = cartridge.blockCount
                throw TapeDeviceError(EIO, "\(name): MTFSF ran into the end of data on \(cartridge.barcode)")
            }
            position = mark + 1
        }
    }

    func backwardSpaceFiles(_ count: Int) throws {
        let cartridge = try loaded("MTBSF")
        try flushFilemarkIfWriting()
        moved()
        for _ in 0..<count {
            guard let mark = cartridge.filemarks.last(where: { $0 < position }) else {
                position = 0
                throw TapeDeviceError(EIO, "\(name): MTBSF reached the beginning of \(cartridge.barcode)")
            }
            position = mark
        }
    }

    func backwardSpaceRecords(_ count: Int) throws {
        let cartridge = try loaded("MTBSR")
        try flushFilemarkIfWriting()
        moved()
        for _ in 0..<count {
            guard position > 0 else { throw TapeDeviceError(EIO, "\(name): MTBSR reached the beginning of \(cartridge.barcode)") }
            if try cartridge.block(position - 1).isFilemark {
                throw TapeDeviceError(EIO, "\(name): MTBSR stopped at a filemark on \(cartridge.barcode)")
            }
            position -= 1
        }
    }

    func erase() throws {
        let cartridge = try loaded("MTERASE")
        if meta?.writeProtected == true || meta?.isWORM == true {
            throw TapeDeviceError(EACCES, "\(name): \(cartridge.barcode) cannot be erased (write-protected or WORM)")
        }
        moved()
        try cartridge.truncate(at: position)
        lastWasWrite = false
    }

    func spaceToEndOfData() throws {
        let cartridge = try loaded("MTEOM")
        moved()
        position = cartridge.blockCount
    }

    func seek(block: Int) throws {
        let cartridge = try loaded("MTSEEK")
        try flushFilemarkIfWriting()
        moved()
        guard block >= 0 else { throw TapeDeviceError(EINVAL, "\(name): MTSEEK \(block)") }
        position = min(block, cartridge.blockCount)
        positionKnown = false
        if block > cartridge.blockCount { throw TapeDeviceError(EIO, "\(name): MTSEEK \(block) is past the end of data") }
    }

    func tell() throws -> Int {
        _ = try loaded("MTIOCPOS")
        return position
    }

    func status() throws -> TapeStatus {
        guard let cartridge else {
            return TapeStatus(fileNumber: -1, blockNumber: -1, beginningOfTape: false, atFilemark: false, endOfData: false,
                              endOfTape: false, writeProtected: false, online: false, doorOpen: true)
        }
        let file = cartridge.fileNumber(at: position)
        let fileStart = cartridge.firstBlock(ofFile: file) ?? 0
        let afterMark = position > 0 && cartridge.filemarks.contains(position - 1)
        let warning = library.config.capacity - min(library.config.capacity, library.config.earlyWarning)
        return TapeStatus(fileNumber: positionKnown ? file : -1, blockNumber: positionKnown ? position - fileStart : -1,
                          beginningOfTape: position == 0, atFilemark: afterMark, endOfData: position >= cartridge.blockCount,
                          endOfTape: cartridge.usedBytes >= warning && position >= cartridge.blockCount,
                          writeProtected: meta?.writeProtected == true,
                          online: true, doorOpen: false)
    }

    func close() throws {
        guard let lock else { return }
        defer { lock.unlock(); self.lock = nil }
        if lastWasWrite, let cartridge {
            try cartridge.append(nil)
            position = cartridge.blockCount
            lastWasWrite = false
        }
        if let cartridge { try library.addCounters(cartridge.barcode, from: counters) }
        let position = self.position
        try library.updateElements { elements in
            elements.drives[index].position = position
            elements.drives[index].pendingFilemark = false
        }
        cartridge = nil
    }
}
