import Foundation
import Glibc

/// One file-backed cartridge of the virtual tape library.
///
/// On-disk format, in the library's `cartridges/` folder, for barcode B:
/// - `B.data`: the bytes of every record, back to back, in tape order.
/// - `B.index`: one 16-byte little-endian entry per tape block in tape order (a block is a
///   record or a filemark, as MTIOCPOS counts them): u64 offset of the record in `B.data`
///   (for a filemark: the data length before it), u32 record length, u32 kind (0 record,
///   1 filemark). The number of blocks is the file size / 16; the end of data follows the
///   last entry.
/// - `B.marks`: the block numbers of the filemarks, u64 little-endian each, ascending: the
///   drive's housekeeping directory, so that spacing over files never reads data.
/// - `B.json`: `CartridgeMeta` (flags, fault knobs and device counters).
/// Writing at block N truncates all three files to what precedes N, like a drive
/// overwriting in the middle of a tape.
final class VirtualCartridge {
    struct Block: Equatable {
        var offset: UInt64
        var length: Int
        var isFilemark: Bool
    }

    let barcode: String
    let base: String
    private var dataFD: Int32 = -1
    private var indexFD: Int32 = -1
    private var marksFD: Int32 = -1
    private(set) var filemarks: [Int] = []
    private(set) var blockCount = 0
    /// Bytes of record data on the cartridge (what counts against its capacity).
    private(set) var usedBytes: UInt64 = 0

    /// Opens (creating when `create`) the cartridge's files under `directory`.
    init(directory: String, barcode: String, create: Bool) throws {
        self.barcode = barcode
        base = directory + "/" + barcode
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        for (suffix, keyPath) in [(".data", \VirtualCartridge.dataFD), (".index", \.indexFD), (".marks", \.marksFD)] {
            let fd = open(base + suffix, flags, 0o644)
            guard fd >= 0 else {
                let error = TapeDeviceError.system("cartridge \(barcode) (\(base + suffix))")
                closeFiles()
                throw error
            }
            self[keyPath: keyPath] = fd
        }
        try load()
    }

    deinit { closeFiles() }

    private func closeFiles() {
        for fd in [dataFD, indexFD, marksFD] where fd >= 0 { Glibc.close(fd) }
        dataFD = -1; indexFD = -1; marksFD = -1
    }

    static func exists(directory: String, barcode: String) -> Bool {
        FileManager.default.fileExists(atPath: directory + "/" + barcode + ".index")
    }

    private func size(_ fd: Int32) -> UInt64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_size) : 0
    }

    private func load() throws {
        let indexSize = size(indexFD)
        guard indexSize % 16 == 0 else {
            throw TapeDeviceError(EIO, "cartridge \(barcode): index \(base).index is \(indexSize) bytes, not a multiple of 16; the cartridge is damaged")
        }
        blockCount = Int(indexSize / 16)
        let marksSize = Int(size(marksFD))
        var raw = [UInt8](repeating: 0, count: marksSize)
        if marksSize > 0 && pread(marksFD, &raw, marksSize, 0) != marksSize {
            throw TapeDeviceError.system("cartridge \(barcode): read \(base).marks")
        }
        filemarks = stride(from: 0, to: marksSize / 8 * 8, by: 8).map { Int(truncatingIfNeeded: Self.u64(raw, $0)) }
        usedBytes = size(dataFD)
        guard filemarks.allSatisfy({ $0 >= 0 && $0 < blockCount }), filemarks == filemarks.sorted() else {
            throw TapeDeviceError(EIO, "cartridge \(barcode): filemark directory points past the end of data; the cartridge is damaged")
        }
    }

    static func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
        return value
    }

    func block(_ number: Int) throws -> Block {
        var raw = [UInt8](repeating: 0, count: 16)
        guard number >= 0 && number < blockCount, pread(indexFD, &raw, 16, off_t(number) * 16) == 16 else {
            throw TapeDeviceError(EIO, "cartridge \(barcode): block \(number) is missing from its index")
        }
        let length = Int(UInt32(raw[8]) | UInt32(raw[9]) << 8 | UInt32(raw[10]) << 16 | UInt32(raw[11]) << 24)
        let offset = Self.u64(raw, 0)
        guard offset <= usedBytes, UInt64(length) <= usedBytes - offset else {
            throw TapeDeviceError(EIO, "cartridge \(barcode): block \(number) points outside its data file; the cartridge is damaged")
        }
        return Block(offset: offset, length: length, isFilemark: raw[12] == 1)
    }

    /// Reads record `block` into `buffer`, which must be large enough.
    func readRecord(_ block: Block, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < block.length {
            let count = pread(dataFD, buffer.baseAddress! + done, block.length - done, off_t(block.offset) + off_t(done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw TapeDeviceError(EIO, "cartridge \(barcode): record data is missing") }
            done += count
        }
    }

    /// Drops block `number` and everything after it.
    func truncate(at number: Int) throws {
        guard number < blockCount else { return }
        let offset = try block(number).offset
        guard ftruncate(indexFD, off_t(number) * 16) == 0, ftruncate(dataFD, off_t(offset)) == 0 else {
            throw TapeDeviceError.system("cartridge \(barcode): truncate")
        }
        filemarks.removeAll { $0 >= number }
        guard ftruncate(marksFD, off_t(filemarks.count * 8)) == 0 else { throw TapeDeviceError.system("cartridge \(barcode): truncate marks") }
        blockCount = number
        usedBytes = offset
    }

    /// Appends a record (or a filemark when `data` is nil) at the end of data.
    func append(_ data: UnsafeRawBufferPointer?) throws {
        let length = data?.count ?? 0
        if let data, length > 0 {
            var done = 0
            while done < length {
                let count = pwrite(dataFD, data.baseAddress! + done, length - done, off_t(usedBytes) + off_t(done))
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw TapeDeviceError.system("cartridge \(barcode): write data") }
                done += count
            }
        }
        var entry = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 { entry[index] = UInt8(truncatingIfNeeded: usedBytes >> (8 * index)) }
        for index in 0..<4 { entry[8 + index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
        entry[12] = data == nil ? 1 : 0
        guard pwrite(indexFD, entry, 16, off_t(blockCount) * 16) == 16 else {
            throw TapeDeviceError.system("cartridge \(barcode): write index")
        }
        if data == nil {
            var mark = [UInt8](repeating: 0, count: 8)
            for index in 0..<8 { mark[index] = UInt8(truncatingIfNeeded: UInt64(blockCount) >> (8 * index)) }
            guard pwrite(marksFD, mark, 8, off_t(filemarks.count * 8)) == 8 else {
                throw TapeDeviceError.system("cartridge \(barcode): write filemark directory")
            }
            filemarks.append(blockCount)
        }
        blockCount += 1
        usedBytes += UInt64(length)
    }

    /// Erases the whole cartridge (MTERASE from the beginning).
    func erase() throws { try truncate(at: 0) }

    /// The first block of file `number` (0 is the beginning of tape), or nil past the end.
    func firstBlock(ofFile number: Int) -> Int? {
        if number == 0 { return 0 }
        guard number - 1 < filemarks.count else { return nil }
        return filemarks[number - 1] + 1
    }

    /// The file number at `block`: the count of filemarks before it.
    func fileNumber(at block: Int) -> Int {
        var low = 0, high = filemarks.count
        while low < high {
            let middle = (low + high) / 2
            if filemarks[middle] < block { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

/// A cartridge's flags, fault knobs and counters (`B.json`).
struct CartridgeMeta: Codable, Equatable {
    var barcode: String
    var writeProtected = false
    /// Fault knob: reading this logical block fails with EIO (a medium error).
    var readErrorAtBlock: Int?
    var recordsRead: UInt64 = 0
    var bytesRead: UInt64 = 0
    var recordsWritten: UInt64 = 0
    var bytesWritten: UInt64 = 0
    var loads: UInt64 = 0

    init(barcode: String) { self.barcode = barcode }

    /// mhvtl's barcode conventions: CLN… is a cleaning cartridge, W… is WORM media (written
    /// once: appending at the end of data works, overwriting does not), and a suffix L1…L9
    /// gives the LTO generation.
    var isCleaning: Bool { barcode.hasPrefix("CLN") }
    var isWORM: Bool { barcode.hasPrefix("W") }

    static func path(directory: String, barcode: String) -> String { directory + "/" + barcode + ".json" }

    static func load(directory: String, barcode: String) -> CartridgeMeta {
        guard let data = StateFile.read(path(directory: directory, barcode: barcode)),
              let meta = try? VTLJSON.decoder.decode(CartridgeMeta.self, from: data) else { return CartridgeMeta(barcode: barcode) }
        return meta
    }

    func save(directory: String) throws {
        try StateFile.writeAtomically(try VTLJSON.encoder.encode(self), to: Self.path(directory: directory, barcode: barcode))
    }
}
