import CTape
import Glibc

/// A real drive through the Linux st driver: a no-rewind node such as /dev/nst0, opened
/// once and set to variable-block mode (MTSETBLK 0). The driver itself implements the
/// `TapeDrive` contract (filemark on close, EW/ENOSPC, ENOMEM); this type only forwards the
/// calls and turns failures into `TapeDeviceError`s with the errno the driver gave.
final class LinuxTapeDrive: TapeDrive {
    let name: String
    private var fd: Int32

    /// Opens the device read-write (O_NONBLOCK so that an empty drive opens and answers
    /// MTIOCGET; st clears it for data transfers), then selects variable-block mode.
    init(path: String) throws {
        name = path
        fd = open(path, O_RDWR | O_NONBLOCK)
        if fd < 0 && errno == EROFS || fd < 0 && errno == EACCES { fd = open(path, O_RDONLY | O_NONBLOCK) }
        guard fd >= 0 else {
            let error = TapeDeviceError.system("tape drive \(path)")
            if error.errno == EBUSY { throw TapeDeviceError(EBUSY, "tape drive \(path) is in use by another process") }
            throw error
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        try operation(Int16(DPM_MTSETBLK), 0, "MTSETBLK 0")
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    private func operation(_ op: Int16, _ count: Int, _ what: String) throws {
        guard let count32 = Int32(exactly: count) else {
            throw TapeDeviceError(EINVAL, "\(name): \(what): count \(count) is out of range")
        }
        if dpm_mt_op(fd, op, count32) != 0 { throw TapeDeviceError.system("\(name): \(what)") }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if count < 0 { throw TapeDeviceError.system("\(name): read") }
        return count
    }

    func write(_ data: UnsafeRawBufferPointer) throws {
        let count = Glibc.write(fd, data.baseAddress, data.count)
        if count < 0 { throw TapeDeviceError.system("\(name): write of \(data.count) bytes") }
        if count != data.count {
            throw TapeDeviceError(EIO, "\(name): short write of \(count) of \(data.count) bytes")
        }
    }

    func writeFilemarks(_ count: Int) throws { try operation(Int16(DPM_MTWEOF), count, "MTWEOF \(count)") }
    func rewind() throws { try operation(Int16(DPM_MTREW), 1, "MTREW") }
    func forwardSpaceFiles(_ count: Int) throws { try operation(Int16(DPM_MTFSF), count, "MTFSF \(count)") }
    func backwardSpaceFiles(_ count: Int) throws { try operation(Int16(DPM_MTBSF), count, "MTBSF \(count)") }
    func backwardSpaceRecords(_ count: Int) throws { try operation(Int16(DPM_MTBSR), count, "MTBSR \(count)") }
    func erase() throws { try operation(Int16(DPM_MTERASE), 1, "MTERASE (long)") }
    func spaceToEndOfData() throws { try operation(Int16(DPM_MTEOM), 1, "MTEOM") }
    func seek(block: Int) throws { try operation(Int16(DPM_MTSEEK), block, "MTSEEK \(block)") }

    func tell() throws -> Int {
        var block = 0
        if dpm_mt_pos(fd, &block) != 0 { throw TapeDeviceError.system("\(name): MTIOCPOS") }
        return block
    }

    func status() throws -> TapeStatus {
        var raw = dpm_mtget()
        if dpm_mt_get(fd, &raw) != 0 { throw TapeDeviceError.system("\(name): MTIOCGET") }
        return LinuxTapeDrive.decode(raw)
    }

    /// Turns MTIOCGET's struct into a `TapeStatus` (unit-tested against hand-made values).
    static func decode(_ raw: dpm_mtget) -> TapeStatus {
        let bits = UInt(bitPattern: raw.mt_gstat)
        func has(_ flag: UInt) -> Bool { bits & flag != 0 }
        return TapeStatus(fileNumber: Int(raw.mt_fileno), blockNumber: Int(raw.mt_blkno),
                          beginningOfTape: has(dpm_gmt_bot), atFilemark: has(dpm_gmt_eof),
                          endOfData: has(dpm_gmt_eod), endOfTape: has(dpm_gmt_eot),
                          writeProtected: has(dpm_gmt_wr_prot), online: has(dpm_gmt_online),
                          doorOpen: has(dpm_gmt_dr_open))
    }

    func close() throws {
        guard fd >= 0 else { return }
        let result = Glibc.close(fd)
        fd = -1
        if result != 0 { throw TapeDeviceError.system("\(name): close (writing the closing filemark)") }
    }
}
